"""Driver-side Tune callbacks: closing the MLflow runs of torn-down trials, and progress.

Tune tears down a trial stopped early (ASHA) or failed without running the trainable's
code after its loop, so its MLflow child run would stay RUNNING. The driver closes it.
`TrialProgress` prints one line per ended trial (Tune's own tables are turned off).
Both hold only strings and numbers, so they pickle with the experiment state for
`Tuner.restore`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ray.tune import Callback

logger = logging.getLogger(__name__)


def ran_to_its_end(result: dict[str, Any]) -> bool:
    """Whether a trial's last result is its final epoch (or the epoch it diverged at): the
    trainable has then logged everything and closed its MLflow run itself, whatever Tune
    says of the trial afterwards (e.g. an error after that report with no retry left)."""
    if result.get("diverged"):
        return True
    return "total_epochs" in result and result.get("epoch", -1) + 1 >= result["total_epochs"]


class TrialRunCloser(Callback):
    """Close a trial's child run when Tune completes or fails the trial.

    Runs the trainable closed itself keep its account (finished, diverged).
    """

    def __init__(
        self, tracking_uri: str, study_name: str, experiment_id: str, parent_run_id: str
    ) -> None:
        self.tracking_uri = tracking_uri
        self.study_name = study_name
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._close(trial, trial_status(trial, failed=False))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._close(trial, "failed", last_error(trial))

    def _close(self, trial: Any, status: str, error: str = "") -> None:
        from hcl_study.tracking import StudyRun

        result = trial.last_result or {}
        # Only a trial that ran to its end has a final regime; a stopped or failed one's
        # last regime stays in its metrics (regime_code).
        regime = result.get("regime") if status in ("finished", "diverged") else None
        study_run = StudyRun(
            self.tracking_uri, self.study_name, self.experiment_id, self.parent_run_id
        )
        try:
            study_run.close_trial(
                trial.trial_id,
                status,
                regime,
                run_id=result.get("mlflow_run_id"),
                error=error,
            )
        except Exception:  # noqa: BLE001 - a tracking outage must not end the study
            # The study's end sweeps every run still RUNNING (close_dangling_trials).
            logger.exception("could not close the MLflow run of trial %s", trial.trial_id)


def last_error(trial: Any) -> str:
    """The last failure Tune wrote to the trial's error file (its traceback), or ""."""
    path = Path(trial.error_file) if trial.error_file else None
    if path is None or not path.is_file():
        return ""
    failures = path.read_text(errors="replace").split("Failure # ")
    return failures[-1].partition("\n")[2].strip()  # without Tune's "N (occurred at …)" line


def trial_status(trial: Any, failed: bool) -> str:
    """How a trial ended: finished, diverged, stopped (early, by the scheduler) or failed."""
    result = trial.last_result or {}
    if not ran_to_its_end(result):
        return "failed" if failed else "stopped"
    return "diverged" if result.get("diverged") else "finished"


class TrialProgress(Callback):
    """Print a line as each trial ends: how many have ended, its status, regime, objective
    metric and params, e.g. `[3/24] 5f1c2_00002 · finished · NC · etf_distance 0.0242 ·
    loss.beta=30, ...`; a failed trial's line ends with its error, and a line says when a
    crashed trial is retried."""

    def __init__(self, metric: str, total: int) -> None:
        self.metric = metric
        self.total = total

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._print(trials, trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._print(trials, trial, failed=True)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        parts = [
            f"{trial.trial_id} · retry {trial.num_failures} of {trial.max_failures} from its "
            "last checkpoint",
            _error_line(trial),
        ]
        print(" · ".join(part for part in parts if part), flush=True)

    def _print(self, trials: list[Any], trial: Any, failed: bool) -> None:
        # The ending trial's own status is set only after its callbacks.
        ended = 1 + sum(
            other.status in ("TERMINATED", "ERROR") for other in trials if other is not trial
        )
        result = trial.last_result or {}
        status = trial_status(trial, failed)
        parts = [f"[{ended}/{self.total}] {trial.trial_id}", status]
        if result.get("regime") and status != "failed":
            parts.append(str(result["regime"]))
        value = result.get(self.metric)
        if isinstance(value, int | float) and status != "failed":
            parts.append(f"{self.metric} {value:.4g}")
        parts.append(format_params(trial.config))
        if status == "failed":
            parts.append(_error_line(trial))
        print(" · ".join(part for part in parts if part), flush=True)


ERROR_LINE_CHARS = 160
"""The progress line's share of an error (Ray's worker-death messages run to a paragraph)."""


def _error_line(trial: Any) -> str:
    """The last line of the trial's last error (the exception), shortened, or ""."""
    lines = last_error(trial).splitlines()
    line = lines[-1].strip() if lines else ""
    return line if len(line) <= ERROR_LINE_CHARS else line[: ERROR_LINE_CHARS - 1] + "…"


def format_params(params: dict[str, Any]) -> str:
    """`key=value, ...` with floats to 4 significant digits (progress lines, summaries)."""
    return ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in params.items()
    )
