"""Driver-side Tune callback that closes the MLflow runs of torn-down trials.

Tune tears down a trial stopped early (ASHA) or failed without running the trainable's
code after its loop, so its MLflow child run would stay RUNNING. The driver closes it.
Holds only strings, so it pickles with the experiment state for `Tuner.restore`.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback


class TrialRunCloser(Callback):
    """Close a trial's child run when Tune completes or fails the trial."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        if result.get("diverged"):
            status = "diverged"
        elif result.get("epoch", -1) + 1 >= result.get("total_epochs", 0):
            status = "finished"
        else:
            status = "stopped"  # early-stopped by the scheduler
        self._close(trial, "FINISHED", status)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._close(trial, "FAILED", "failed")

    def _close(self, trial: Any, run_status: str, hcl_status: str) -> None:
        from hcl_study.tracking import close_trial_run

        result = trial.last_result or {}
        close_trial_run(
            self.tracking_uri,
            run_id=result.get("mlflow_run_id"),
            trial_id=trial.trial_id,
            run_status=run_status,
            hcl_status=hcl_status,
            regime=result.get("regime"),
        )
