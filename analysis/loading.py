"""Read a study from MLflow into tables: one row per trial, and the per-epoch history.

The trial table (`trial_table`) has one row per trial run, failed and killed ones included:

* `trial_id`, `run_id`, `mlflow_status` (FINISHED / FAILED / KILLED / RUNNING);
* `status`: the run's `hcl.status` (finished, diverged, stopped, failed, killed, running);
* `regime`: the final regime (NC, partial, DC, diverged) of trials that ran to their end
  (status finished or diverged): their `hcl.regime`, or, for runs logged without that tag,
  `classify_regime` of their final metrics; None for failed, killed, stopped and running
  trials (their regime is not final);
* `last_regime`: the regime at the last epoch the trial logged, for every trial that logged
  one (so a failed trial keeps what it had reached); None for a trial with no metrics;
* `epochs_logged`: how many epochs of metrics the trial logged (0 when none);
* `started_at`: when the trial's run was created (UTC), so the order in which a searcher
  started its trials;
* `error`: for a failed trial, the last line of its traceback (e.g. `RuntimeError: ...`;
  the whole end of it is the run's `hcl.error` tag); "" otherwise;
* every param (the flattened trial config, e.g. `loss.beta`), typed per column: bool, int
  (nullable Int64 when some are missing), float, or str; 'None' becomes missing (NaN / None);
* every metric at its last step, as float; a trial without metrics has NaN there (the
  geometry metrics, `METRIC_KEYS`, are columns even when no trial logged one).

The history table (`history_table`) is long: `trial_id`, `epoch`, `metric`, `value`, one row
per logged value. MLflow's stand-in for +/-inf (+/-1.8e308) is turned back into +/-inf in both.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from analysis.order_parameters import (
    classify_regimes,
    singular_values_from_class_means,
    singular_values_from_spectrum,
)
from hcl_study.commands import command
from hcl_study.errors import UserError
from hcl_study.geometry import REGIME_CODES
from hcl_study.geometry.metrics import METRIC_KEYS
from hcl_study.study.runner import STUDIES_DIR, STUDY_FILE, StudyLocation
from hcl_study.tracking import (
    StudyRecord,
    TrialRecord,
    check_tracking_uri,
    default_tracking_uri,
    download_artifact,
    load_study,
    metric_histories,
)

FINAL_STATUSES: tuple[str, ...] = ("finished", "diverged")
"""`hcl.status` of trials that ran to their end: their regime is final and they have artifacts."""
ID_COLUMNS: tuple[str, ...] = (
    "trial_id",
    "run_id",
    "status",
    "mlflow_status",
    "regime",
    "last_regime",
    "epochs_logged",
    "started_at",
    "error",
)
HISTORY_COLUMNS: tuple[str, ...] = ("trial_id", "epoch", "metric", "value")

_REGIME_OF_CODE = {code: regime for regime, code in REGIME_CODES.items()}
_MISSING_TEXTS = ("None", "null", "")
ParamValue = bool | int | float | str | None


@dataclass(frozen=True)
class StudyData:
    """A study as the analysis uses it.

    Attributes:
        name: The study (MLflow experiment) name.
        tracking_uri: Where it was read from.
        experiment_id: The study's experiment.
        parent_run_id: The study's parent run (where the report is logged).
        status: The parent run's MLflow status; anything but FINISHED means the study is
            not complete (interrupted, failed, or still running), so its results may change.
        trials: The trial table (see the module docstring).
        history: The long per-epoch table `trial_id, epoch, metric, value`.
        param_columns: The trial table's param columns (the others are ids and metrics).
    """

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    status: str
    trials: pd.DataFrame
    history: pd.DataFrame
    param_columns: tuple[str, ...]


def study_tracking_uri(study_name: str, studies_dir: Path | str = STUDIES_DIR) -> str:
    """The tracking URI of a study: its local `study.json`'s, else MLFLOW_TRACKING_URI, else
    its local SQLite store.

    Raises:
        UserError: None of these exists.
    """
    study_dir = Path(studies_dir) / study_name
    if (study_dir / STUDY_FILE).exists():
        return StudyLocation.load(study_dir).tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    uri = default_tracking_uri(study_dir)
    if not (study_dir / "mlflow.db").exists():
        raise UserError(
            f"No study named {study_name!r} at tracking_uri {uri!r}: {study_dir} holds neither "
            f"{STUDY_FILE} nor mlflow.db. Give the study's tracking URI with --tracking-uri (or "
            "MLFLOW_TRACKING_URI)."
        )
    return uri


def _check_store(tracking_uri: str, study_name: str) -> None:
    """Fail fast on a missing SQLite file (MLflow would create an empty store there) and on a
    server that does not answer (MLflow would retry for minutes)."""
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        if not database.exists():
            raise UserError(
                f"No study named {study_name!r} at tracking_uri {tracking_uri!r}: "
                f"{database} does not exist."
            )
    check_tracking_uri(tracking_uri)


def parse_param(text: str) -> ParamValue:
    """An MLflow param string as a Python value: None, bool, int, float or the string."""
    if text in _MISSING_TEXTS:
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _typed_column(texts: list[str | None]) -> pd.Series:
    """One param column: the narrowest of bool, int, float and str that holds every value."""
    values = [None if text is None else parse_param(text) for text in texts]
    present = [value for value in values if value is not None]
    kinds = {type(value) for value in present}
    missing = len(present) < len(values)
    if not kinds:
        return pd.Series(np.nan, index=range(len(values)), dtype=float)
    if kinds == {bool}:
        return pd.Series(values, dtype="boolean" if missing else bool)
    if kinds == {int}:
        return pd.Series(values, dtype="Int64" if missing else "int64")
    if kinds <= {int, float}:
        return pd.Series([np.nan if value is None else value for value in values], dtype=float)
    kept = [None if value is None else text for value, text in zip(values, texts, strict=True)]
    return pd.Series(kept)


def typed_params(params: Sequence[dict[str, str]]) -> pd.DataFrame:
    """Param dicts (one per trial) as a table with one typed column per key, sorted by key."""
    keys = sorted({key for row in params for key in row})
    return pd.DataFrame({key: _typed_column([row.get(key) for row in params]) for key in keys})


def _restore_infinities(values: np.ndarray) -> np.ndarray:
    """Turn MLflow's +/-float max (its stand-in for +/-inf) back into +/-inf."""
    limit = sys.float_info.max
    return np.where(np.abs(values) >= limit, np.copysign(np.inf, values), values)


def _last_regime(trial: TrialRecord) -> str | None:
    code = trial.metrics.get("regime_code")
    if trial.regime:
        return trial.regime
    if code is None or not np.isfinite(code):
        return None
    return _REGIME_OF_CODE.get(int(code))


def trial_table(record: StudyRecord) -> pd.DataFrame:
    """One row per trial of `record` (see the module docstring); `epochs_logged` is NaN here.

    `load_study_data` fills `epochs_logged` from the history.
    """
    rows = []
    for trial in record.trials:
        status = trial.status or trial.mlflow_status.lower()
        rows.append(
            {
                "trial_id": trial.trial_id,
                "run_id": trial.run_id,
                "status": status,
                "mlflow_status": trial.mlflow_status,
                "regime": trial.regime if status in FINAL_STATUSES else None,
                "last_regime": _last_regime(trial),
                "epochs_logged": np.nan,
                "started_at": pd.to_datetime(trial.start_time_ms, unit="ms", utc=True),
                "error": (trial.error.strip().splitlines() or [""])[-1],
            }
        )
    ids = pd.DataFrame(rows, columns=list(ID_COLUMNS))
    params = typed_params([trial.params for trial in record.trials])
    logged = {key for trial in record.trials for key in trial.metrics}
    metric_keys = sorted(logged | set(METRIC_KEYS))  # geometry columns even if none logged
    metrics = pd.DataFrame(
        {
            key: _restore_infinities(
                np.array([trial.metrics.get(key, np.nan) for trial in record.trials], dtype=float)
            )
            for key in metric_keys
        }
    )
    table = pd.concat([ids, params, metrics], axis=1)
    untagged = table["regime"].isna() & table["status"].isin(FINAL_STATUSES)
    if untagged.any():
        table.loc[untagged, "regime"] = classify_regimes(table.loc[untagged])
    return table


def history_table(tracking_uri: str, record: StudyRecord) -> pd.DataFrame:
    """The long per-epoch table of every metric of every trial of `record`.

    Args:
        tracking_uri: Where the study lives.
        record: The study, from `hcl_study.tracking.load_study`.

    Returns:
        Columns `trial_id, epoch, metric, value`, sorted by trial id, metric and epoch; a
        metric logged twice at one epoch appears once, with its latest value by timestamp
        (the one MLflow shows as the run's metric).
    """
    trial_of_run = {trial.run_id: trial.trial_id for trial in record.trials}
    run_keys = {trial.run_id: list(trial.metrics) for trial in record.trials}
    points = metric_histories(tracking_uri, run_keys)
    history = pd.DataFrame(
        [(trial_of_run[run_id], step, key, value) for run_id, key, step, value in points],
        columns=list(HISTORY_COLUMNS),
    ).astype({"trial_id": object, "epoch": "int64", "metric": object, "value": float})
    history["value"] = _restore_infinities(history["value"].to_numpy())
    # Both stores return a step's values oldest first, and metric_histories sorts stably.
    history = history.drop_duplicates(["trial_id", "metric", "epoch"], keep="last")
    return history.sort_values(["trial_id", "metric", "epoch"]).reset_index(drop=True)


def _require_one_run_per_trial(record: StudyRecord) -> None:
    """hcl-study keeps one run per trial (a retry or resume reopens it); runs that share a
    trial id were made by something else, and their histories cannot be told apart."""
    runs: dict[str, list[str]] = {}
    for trial in record.trials:
        runs.setdefault(trial.trial_id, []).append(trial.run_id)
    shared = {trial_id: ids for trial_id, ids in runs.items() if len(ids) > 1}
    if shared:
        listed = "; ".join(f"{trial_id!r}: {', '.join(ids)}" for trial_id, ids in shared.items())
        raise UserError(
            f"hcl.trial_id: the study has more than one run per trial ({listed}); each trial "
            "must have one run. Delete the runs that do not belong to the study (mlflow runs "
            "delete --run-id ID) and analyse it again."
        )


def load_study_data(
    tracking_uri: str, study_name: str, metrics: Sequence[str] | None = None
) -> StudyData:
    """Read a study's trial table and per-epoch history from MLflow.

    Args:
        tracking_uri: Any MLflow tracking URI (SQLite file, server, ...).
        study_name: The study (experiment) name.
        metrics: Metric keys of the history; every logged one when None (all are read
            either way: they count each trial's `epochs_logged`).

    Raises:
        UserError: No study of that name exists at `tracking_uri`, nothing answers there, the
            study has no trial run yet, or two runs of the study claim one trial.
    """
    _check_store(tracking_uri, study_name)
    record = load_study(tracking_uri, study_name)
    if not record.trials:
        raise UserError(
            f"study {study_name!r} has no trial runs yet (it was interrupted, or is starting, "
            f"before its first trial); run or resume it first: {command('hcl-study')} resume "
            f"{study_name}"
        )
    _require_one_run_per_trial(record)
    trials = trial_table(record)
    history = history_table(tracking_uri, record)  # all of it: it counts the epochs
    epochs = history.groupby("trial_id")["epoch"].nunique()
    if metrics is not None:
        history = history[history["metric"].isin(list(metrics))].reset_index(drop=True)
    trials["epochs_logged"] = trials["trial_id"].map(epochs).fillna(0).astype("int64")
    params = tuple(sorted({key for trial in record.trials for key in trial.params}))
    return StudyData(
        name=study_name,
        tracking_uri=tracking_uri,
        experiment_id=record.experiment_id,
        parent_run_id=record.run_id,
        status=record.status,
        trials=trials,
        history=history,
        param_columns=params,
    )


def varied_params(trials: pd.DataFrame, param_columns: Sequence[str]) -> list[str]:
    """The param columns that take more than one value among `trials` (missing counts as
    a value), e.g. `varied_params(data.trials, data.param_columns)`."""
    return [
        column
        for column in param_columns
        if column in trials and trials[column].astype(str).nunique(dropna=False) > 1
    ]


_UNFINISHED_REASONS = {
    "KILLED": "was interrupted",
    "FAILED": "stopped on an error",
    "RUNNING": "is still running, or its driver died before closing it",
}


def unfinished_note(data: StudyData) -> str:
    """Why the study's results may still change, or "" for a complete study."""
    if data.status == "FINISHED":
        return ""
    reason = _UNFINISHED_REASONS.get(data.status, "has not finished")
    ended = int(data.trials["regime"].notna().sum())
    return (
        f"Study {data.name!r} is not complete: it {reason} (parent run {data.status}). "
        f"Figures, boundaries and verdicts use the {ended} of its {len(data.trials)} trial "
        f"runs that ran to their end, and may change when it completes "
        f"({command('hcl-study')} resume {data.name} continues a study that is not running)."
    )


def load_singular_values(
    tracking_uri: str,
    trials: pd.DataFrame,
    *,
    epoch: int = -1,
    source: Literal["spectrum", "class_means"] = "spectrum",
) -> dict[str, np.ndarray]:
    """Normalized class-mean singular values (descending, first = 1) of trials at one epoch.

    Only trials with status finished or diverged have the artifacts; the others, and trials
    whose arrays do not reach `epoch`, are left out.

    Args:
        tracking_uri: Where the study lives.
        trials: Rows of the trial table (needs `trial_id`, `run_id`, `status`).
        epoch: Index into the artifact's epochs (-1: the last logged epoch).
        source: `spectrum` (spectrum.npy, eigenvalues of the class-mean covariance) or
            `class_means` (class_means.npy, the means themselves).

    Returns:
        Trial id -> singular values, in the order of `trials`.
    """
    values = {}
    with tempfile.TemporaryDirectory(prefix="hcl-analysis-") as folder:
        for row in trials.itertuples(index=False):
            if row.status not in FINAL_STATUSES:
                continue
            path = download_artifact(
                tracking_uri, row.run_id, f"{source}.npy", Path(folder) / row.trial_id
            )
            arrays = np.load(path)  # (epochs, r) or (epochs, C, d)
            if not -len(arrays) <= epoch < len(arrays):
                continue
            convert = (
                singular_values_from_spectrum
                if source == "spectrum"
                else singular_values_from_class_means
            )
            values[row.trial_id] = convert(arrays[epoch])
    return values
