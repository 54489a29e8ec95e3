"""Everything the project writes to and reads from MLflow.

Layout (the contract the trainable and the analysis rely on):

* One experiment per study, named by the study.
* A parent run per study (run name = study name; tags `hcl.role=study`, `hcl.study`,
  version tags; params = the flattened spec; artifact `spec.yaml`). A resumed study reopens it.
* A child run per trial (tag `mlflow.parentRunId`; tags `hcl.role=trial`, `hcl.trial_id`,
  `hcl.study`, `hcl.status`, at the end `hcl.regime`; params = the flattened trial config;
  per-epoch metrics with `step = epoch`; artifacts `class_means.npy`, `spectrum.npy`,
  `spectrum.png`). A retried trial reopens its run (found by `hcl.trial_id`) and skips epochs
  already logged.

Only `MlflowClient` with explicit run ids is used (no global active run). Metrics that cannot
be sent are buffered and re-sent in step order; resending is idempotent because the buffered
metrics keep their timestamps and the store drops exact duplicates. NaN metrics are stored as
NaN; MLflow stores +/-inf as +/-1.8e308.

During our calls, MLflow's HTTP retry settings default to fail-fast values (one retry, 15 s
socket timeout) instead of MLflow's minutes-long backoff; the environment variables
MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR and
MLFLOW_HTTP_REQUEST_TIMEOUT, when set, take precedence. Our own retries run until a deadline.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import numpy as np
import requests
import sqlalchemy
import yaml
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities import Experiment, Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request_safe

from hcl_study.config import flatten
from hcl_study.errors import TrackingError, UserError

logger = logging.getLogger(__name__)

# `hcl.status` of a closed trial; an open one is tagged `running`.
TrialStatus = Literal["finished", "diverged", "failed", "killed", "stopped"]
Regime = Literal["NC", "DC", "partial", "diverged"]
RunEndStatus = Literal["FINISHED", "FAILED", "KILLED"]

REGIMES: tuple[str, ...] = ("NC", "DC", "partial", "diverged")
RUN_END_STATUSES: tuple[str, ...] = ("FINISHED", "FAILED", "KILLED")
# hcl.status of a closed trial -> MLflow run status. Early-stopped (ASHA) and diverged trials
# ended as designed, so their runs are FINISHED (as Ray's own MLflow callback does).
MLFLOW_STATUS_OF_TRIAL: dict[str, str] = {
    "finished": "FINISHED",
    "diverged": "FINISHED",
    "stopped": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
}

MAX_PARAM_VALUE_LENGTH = 6000
REGIME_COUNT_TAG = "hcl.regime_count."
"""Prefix of the parent run's tags counting its trials by regime (and `failed`, `stopped`)."""
ERROR_TAG = "hcl.error"
"""Tag of a failed trial's run: the end of its last traceback (deleted if it is retried)."""
MAX_ERROR_CHARS = 4000
SEARCH_PAGE_SIZE = 1000
"""Runs per `search_runs` request (MLflow's default); a study's runs are read page by page."""
DEFAULT_CALL_TIMEOUT_S = 120.0
# No retries inside MLflow's client: `_call` retries, and it looks for a run before creating
# it again, which a blind retry of a POST whose reply was lost would not.
_FAIL_FAST_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
_ALLOWED_URIS = (
    "http(s)://host:port of a running `mlflow server`, sqlite:////absolute/path/mlflow.db, "
    "or postgresql+psycopg2://user:password@host:port/database"
)
_http_settings_lock = threading.RLock()
_Result = TypeVar("_Result")


@contextmanager
def _fail_fast_http() -> Iterator[None]:
    """Apply `_FAIL_FAST_HTTP` for the duration of one of our MLflow calls.

    Variables the user set are left alone; the lock keeps concurrent calls from restoring the
    environment under each other.
    """
    with _http_settings_lock:
        added = [name for name in _FAIL_FAST_HTTP if name not in os.environ]
        for name in added:
            os.environ[name] = _FAIL_FAST_HTTP[name]
        try:
            yield
        finally:
            for name in added:
                os.environ.pop(name, None)


def _is_transient(error: Exception) -> bool:
    """Connection failures and server-side (5xx) errors may pass; refusals (4xx) will not."""
    if isinstance(error, MlflowException):
        return error.get_http_status_code() >= 500
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return error.response.status_code >= 500
    return True


def _call(action: Callable[[], _Result], what: str, timeout_s: float) -> _Result:
    """Run one MLflow call, retrying transient failures until `timeout_s` has passed.

    Raises:
        TrackingError: A refused call, or transient failures up to the deadline.
    """
    deadline = time.monotonic() + timeout_s
    pause_s = 0.5
    while True:
        try:
            with _fail_fast_http():
                return action()
        except (MlflowException, requests.RequestException) as error:
            if not _is_transient(error):
                raise TrackingError(f"MLflow refused to {what}: {error}") from error
            if time.monotonic() + pause_s > deadline:
                raise TrackingError(
                    f"Could not {what} within {timeout_s:.0f} s (tracking server unreachable?): "
                    f"{error}"
                ) from error
            logger.warning("MLflow call failed (%s), retrying: %s", what, error)
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 5.0)


def _param_value(value: Any) -> str:
    return str(value)[:MAX_PARAM_VALUE_LENGTH]


def _param_conflicts(params: dict[str, Any], existing: dict[str, str]) -> list[str]:
    """The keys of the flattened `params` whose value differs from the one already logged."""
    flat = {key: _param_value(value) for key, value in flatten(params).items()}
    return [key for key, value in flat.items() if key in existing and existing[key] != value]


def _log_params(
    client: MlflowClient,
    run_id: str,
    params: dict[str, Any],
    existing: dict[str, str],
    timeout_s: float,
) -> None:
    """Log the flattened `params` not yet in `existing` (MLflow's client sends them 100 per
    request; a retry resends them all, which MLflow accepts for unchanged values)."""
    flat = {key: _param_value(value) for key, value in flatten(params).items()}
    new = [Param(key, value) for key, value in flat.items() if key not in existing]
    _call(partial(client.log_batch, run_id, params=new), "log params", timeout_s)


def _search_all_runs(
    client: MlflowClient, experiment_id: str, filter_string: str, timeout_s: float
) -> list[Run]:
    """Every run matching `filter_string`, oldest first, read page by page."""
    runs: list[Run] = []
    page_token: str | None = None
    while True:
        page = _call(
            partial(
                client.search_runs,
                [experiment_id],
                filter_string=filter_string,
                max_results=SEARCH_PAGE_SIZE,
                order_by=["attributes.start_time ASC"],
                page_token=page_token,
            ),
            "search runs",
            timeout_s,
        )
        runs.extend(page)
        page_token = page.token
        if not page_token:
            return runs


def _find_or_create_run(
    client: MlflowClient,
    experiment_id: str,
    filter_string: str,
    create: Callable[[], Run],
    what: str,
    timeout_s: float,
) -> tuple[Run, bool]:
    """The oldest run matching `filter_string`, or one made by `create`, never two.

    A create whose reply is lost (a timeout, a proxy's 502) may still have made the run, so
    every retry looks for it before creating again.

    Returns:
        The run, and whether it existed before this call.
    """
    found = _search_all_runs(client, experiment_id, filter_string, timeout_s)
    if found:
        return found[0], True

    def find_or_create() -> Run:
        made = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        return made[0] if made else create()

    return _call(find_or_create, what, timeout_s), False


def _quoted(value: str) -> str:
    """`value` as a filter-string literal (MLflow filters cannot escape quotes)."""
    if "'" in value:
        raise ValueError(f"quote characters are not allowed here: {value!r}")
    return f"'{value}'"


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _git_commit() -> str | None:
    """HEAD of the repository the hcl_study sources are tracked in; None when not in one."""
    source_dir = Path(__file__).resolve().parent
    try:
        subprocess.run(
            ["git", "ls-files", "--error-unmatch", "__init__.py"],
            cwd=source_dir, capture_output=True, check=True, timeout=10,
        )  # fmt: skip
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=source_dir, capture_output=True, check=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() or None


GIT_COMMIT_TAG = "hcl.git_commit"


def environment_tags() -> dict[str, str]:
    """Version tags of the parent run (`hcl.git_commit` only when the sources are in git)."""
    tags = {
        "hcl.version": _package_version("hcl-study"),
        "hcl.ray_version": _package_version("ray"),
        "hcl.torch_version": _package_version("torch"),
        "hcl.mlflow_version": _package_version("mlflow"),
        "hcl.python_version": platform.python_version(),
    }
    commit = _git_commit()
    if commit:
        tags[GIT_COMMIT_TAG] = commit
    return tags


def default_tracking_uri(study_dir: Path) -> str:
    """`sqlite:////abs/study_dir/mlflow.db`, the store used when no tracking_uri is given."""
    return f"sqlite:///{(study_dir.resolve() / 'mlflow.db').as_posix()}"


def _redacted(uri: str) -> str:
    """`uri` with any password replaced by `***`."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def redacted_uri(uri: str) -> str:
    """`uri` with any password replaced by `***`, fit to print or store in a report."""
    return _redacted(uri)


def _sqlite_database(uri: str) -> Path | None:
    """The database file of an `sqlite:///` URI; None for in-memory or malformed ones."""
    database = uri.removeprefix("sqlite:///")
    if not database or database.startswith(":memory:") or database == uri:
        return None
    return Path(database).absolute()


def _unusable(uri: str, reason: str) -> UserError:
    return UserError(
        f"tracking_uri {_redacted(uri)!r} cannot be used: {reason}. Allowed values are "
        f"{_ALLOWED_URIS}; change tracking_uri or start the server it names."
    )


CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
)
"""The environment with which MLflow's client reaches a server that asks for credentials."""


def tracking_environment() -> dict[str, str]:
    """The `CREDENTIAL_VARIABLES` set here: the trials, which log from other processes and
    nodes, need them as much as the driver (`ray.init(runtime_env=...)` passes them)."""
    return {name: os.environ[name] for name in CREDENTIAL_VARIABLES if name in os.environ}


def _check_mlflow_server(uri: str, timeout_s: float) -> None:
    """`/health` must answer, and one API call with this machine's credentials (or those in
    the URI, which `requests` sends as basic auth) must be allowed."""
    creds = get_default_host_creds(uri)
    auth = None if urlsplit(uri).username else _basic_auth(creds)
    headers = {"Authorization": f"Bearer {creds.token}"} if creds.token and not auth else {}
    verify: bool | str = creds.server_cert_path or not creds.ignore_tls_verification
    cert = creds.client_cert_path
    request = partial(requests.request, auth=auth, headers=headers, timeout=timeout_s, cert=cert)
    base = uri.rstrip("/")
    try:
        health = request("GET", f"{base}/health", verify=verify)
        if health.status_code != 200:
            raise _unusable(uri, f"the server answered /health with HTTP {health.status_code}")
        search = request(
            "POST", f"{base}/api/2.0/mlflow/experiments/search", json={"max_results": 1},
            verify=verify,
        )  # fmt: skip
    except requests.RequestException as error:  # refused, timeouts, resets, TLS
        raise _unusable(uri, f"no MLflow server answers there ({error})") from error
    if search.status_code in (401, 403):
        raise _unusable(
            uri,
            f"the server refused this machine's credentials (HTTP {search.status_code}); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) "
            "to an account of the server",
        )
    if search.status_code != 200:
        raise _unusable(
            uri,
            f"it answered the MLflow API with HTTP {search.status_code} (is it an MLflow "
            "tracking server?)",
        )


def _basic_auth(creds: Any) -> tuple[str, str] | None:
    return (creds.username, creds.password) if creds.username and creds.password else None


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail early, with a user-facing message, when `uri` cannot hold the study's runs.

    HTTP(S) servers must answer `/health` and accept this machine's credentials (the
    `CREDENTIAL_VARIABLES`, or user:password in the URI); PostgreSQL must accept a
    connection; for SQLite the database's folder, or the nearest folder above it that
    exists, must be writable (nothing is created here: `StudyRun.start_or_resume` makes the
    folder). Plain paths and file://
    URIs (MLflow's file store, which MLflow 3 opens only on an opt-out) are refused.

    Raises:
        UserError: Unsupported scheme, or a server that does not answer within `timeout_s`.
    """
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        _check_mlflow_server(uri, timeout_s)
    elif scheme == "sqlite":
        database = _sqlite_database(uri)
        if database is None:
            raise _unusable(uri, "an SQLite store needs a database file")
        existing = next(folder for folder in database.parents if folder.exists())
        if not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
            raise _unusable(uri, f"{existing} is not a writable folder")
    elif scheme.startswith("postgresql"):
        _check_postgres(uri, timeout_s)
    elif scheme in ("", "file"):
        folder = Path(urlsplit(uri).path if scheme else uri).resolve()
        raise _unusable(
            uri,
            "a folder is MLflow's file store, which MLflow 3 keeps in maintenance mode and "
            f"refuses to open; use an SQLite file in it instead: sqlite:///{folder}/mlflow.db",
        )
    else:
        raise _unusable(uri, f"the scheme {scheme!r} is not supported")


def _check_postgres(uri: str, timeout_s: float) -> None:
    try:
        engine = sqlalchemy.create_engine(
            uri, connect_args={"connect_timeout": max(1, int(timeout_s))}
        )
    except ImportError as error:
        raise _unusable(
            uri, f"its database driver is not installed ({error}); write postgresql+psycopg2://"
        ) from error
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        raise _unusable(uri, f"PostgreSQL does not accept a connection ({reason})") from error
    finally:
        engine.dispose()


def _terminal_status(status: str) -> str:
    """`status` lower-cased, checked to be a terminal `hcl.status`."""
    status = status.lower()
    if status not in MLFLOW_STATUS_OF_TRIAL:
        raise ValueError(
            f"trial status must be one of {tuple(MLFLOW_STATUS_OF_TRIAL)}, got {status!r}"
        )
    return status


def _check_regime(regime: str | None) -> None:
    if regime is not None and regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES} or None, got {regime!r}")


def _set_tags(client: MlflowClient, run_id: str, tags: dict[str, Any], timeout_s: float) -> None:
    batch = [RunTag(key, str(value)) for key, value in tags.items()]
    _call(partial(client.log_batch, run_id, tags=batch), "set tags", timeout_s)


def _close_trial_run(
    client: MlflowClient,
    run_id: str,
    status: str,
    regime: str | None,
    timeout_s: float,
    error: str = "",
) -> None:
    """Set `hcl.status` (and `hcl.regime`, `hcl.error`) and the matching terminal MLflow
    status."""
    tags = {"hcl.status": status} | ({"hcl.regime": regime} if regime else {})
    if error:
        tags[ERROR_TAG] = error[-MAX_ERROR_CHARS:]
    _set_tags(client, run_id, tags, timeout_s)
    terminate = partial(client.set_terminated, run_id, MLFLOW_STATUS_OF_TRIAL[status])
    _call(terminate, "close a trial run", timeout_s)


def _study_filter(study_name: str) -> str:
    return f"tags.`hcl.role` = 'study' and tags.`hcl.study` = {_quoted(study_name)}"


def _trials_filter(parent_run_id: str) -> str:
    """The trial runs of a study: other runs nested under its parent (e.g. one a user logged
    from a notebook) are not trials."""
    return f"tags.`hcl.role` = 'trial' and tags.mlflow.parentRunId = {_quoted(parent_run_id)}"


def _experiment_id(
    client: MlflowClient, name: str, artifact_location: str | None, timeout_s: float
) -> str:
    """The id of the active experiment `name`, created when missing."""
    find = partial(client.get_experiment_by_name, name)
    experiment = _call(find, "find the experiment", timeout_s)
    if experiment is None:
        create = partial(client.create_experiment, name, artifact_location=artifact_location)
        try:
            return _call(create, "create the experiment", timeout_s)
        except TrackingError:  # created meanwhile by another process
            experiment = _call(find, "find the experiment", timeout_s)
            if experiment is None:
                raise
    _require_active(experiment, name)
    return experiment.experiment_id


def _require_active(experiment: Experiment, name: str) -> None:
    if experiment.lifecycle_stage != "active":
        raise UserError(
            f"The MLflow experiment {name!r} was deleted. Restore it (mlflow experiments restore "
            f"--experiment-id {experiment.experiment_id}) or choose another study name."
        )


def _require_same_spec(study_name: str, spec: dict[str, Any], logged: dict[str, str]) -> None:
    conflicts = _param_conflicts(spec, logged)
    if conflicts:
        raise UserError(
            f"Study {study_name!r} already exists in MLflow with a different spec "
            f"({', '.join(conflicts[:10])} changed). Resume it with its original spec, or "
            "give the new spec another study name."
        )


def check_study_accepted(
    tracking_uri: str,
    study_name: str,
    spec: dict[str, Any],
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
) -> None:
    """Refuse up front, before Ray starts or a folder is made, a study that
    `StudyRun.start_or_resume` would refuse. Reads only: an SQLite database that does not
    exist yet holds nothing to check and is not created.

    Raises:
        UserError: The study's experiment was deleted, or its parent run logged another
            value of a key of `spec`.
        TrackingError: MLflow could not be reached or refused a call.
    """
    database = _sqlite_database(tracking_uri) if tracking_uri.startswith("sqlite") else None
    if database is not None and not database.exists():
        return
    client = MlflowClient(tracking_uri)
    find = partial(client.get_experiment_by_name, study_name)
    experiment = _call(find, "find the experiment", call_timeout_s)
    if experiment is None:
        return
    _require_active(experiment, study_name)
    filter_string = _study_filter(study_name)
    runs = _search_all_runs(client, experiment.experiment_id, filter_string, call_timeout_s)
    if runs:
        _require_same_spec(study_name, spec, runs[0].data.params)


class StudyRun:
    """The driver's handle on a study's experiment and parent run.

    Attributes:
        tracking_uri: Where the runs live.
        study_name: Experiment name and parent run name.
        experiment_id: The study's experiment.
        run_id: The parent run.
        resumed: True when the parent run existed before (a resumed study).
        call_timeout_s: How long each call retries while the server is unreachable.
    """

    def __init__(
        self,
        tracking_uri: str,
        study_name: str,
        experiment_id: str,
        run_id: str,
        resumed: bool = True,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> None:
        self._client = MlflowClient(tracking_uri)
        self.tracking_uri = tracking_uri
        self.study_name = study_name
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.resumed = resumed
        self.call_timeout_s = call_timeout_s

    @classmethod
    def start_or_resume(
        cls,
        tracking_uri: str,
        study_name: str,
        spec: dict[str, Any],
        spec_path: Path | None = None,
        artifact_location: str | None = None,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> StudyRun:
        """Create the study's experiment and parent run, or reopen them (status RUNNING).

        The version tags are (re)set, so they describe the latest start of the study.

        Args:
            tracking_uri: MLflow tracking URI (check it first with `check_tracking_uri`).
            study_name: Experiment and parent run name.
            spec: The study spec, logged as flattened params.
            spec_path: The spec file, logged as `spec.yaml`; `spec` dumped as YAML when None.
            artifact_location: Artifact root of a new experiment; MLflow's default when None
                (for SQLite that is `./mlruns` in the working directory).
            call_timeout_s: How long each call retries while the server is unreachable.

        Raises:
            UserError: The experiment was deleted, or a resumed study's spec gives another
                value to a key it logged (keys it adds are logged; the study folder's
                spec.yaml is what refuses any other change).
            TrackingError: MLflow could not be reached or refused a call.
        """
        database = _sqlite_database(tracking_uri) if tracking_uri.startswith("sqlite") else None
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri)
        experiment_id = _experiment_id(client, study_name, artifact_location, call_timeout_s)
        tags = {"hcl.role": "study", "hcl.study": study_name, **environment_tags()}
        run, existed = _find_or_create_run(
            client,
            experiment_id,
            _study_filter(study_name),
            partial(client.create_run, experiment_id, run_name=study_name, tags=tags),
            "create the study run",
            call_timeout_s,
        )
        _require_same_spec(study_name, spec, run.data.params)  # before the run is touched
        if existed:
            reopen = partial(client.update_run, run.info.run_id, status="RUNNING")
            _call(reopen, "reopen the study run", call_timeout_s)
        run_id = run.info.run_id
        _log_params(client, run_id, spec, run.data.params, call_timeout_s)
        _set_tags(client, run_id, tags, call_timeout_s)
        if GIT_COMMIT_TAG in run.data.tags and GIT_COMMIT_TAG not in tags:  # now outside git
            _call(partial(client.delete_tag, run_id, GIT_COMMIT_TAG), "set tags", call_timeout_s)
        if spec_path is None:
            spec_text = yaml.safe_dump(spec, sort_keys=False)
        else:
            spec_text = Path(spec_path).read_text(encoding="utf-8")
        _call(
            partial(client.log_text, run_id, spec_text, "spec.yaml"),
            "log spec.yaml",
            call_timeout_s,
        )
        return cls(tracking_uri, study_name, experiment_id, run_id, existed, call_timeout_s)

    def _trial_runs(self, extra_filter: str = "") -> list[Run]:
        filter_string = _trials_filter(self.run_id) + extra_filter
        return _search_all_runs(
            self._client, self.experiment_id, filter_string, self.call_timeout_s
        )

    def close_trial(
        self,
        trial_id: str | None,
        status: TrialStatus,
        regime: Regime | None = None,
        *,
        run_id: str | None = None,
        error: str = "",
    ) -> bool:
        """Close a trial's run that is still RUNNING (its worker was torn down).

        Runs the worker closed itself are left as they are, so the worker's own account
        (e.g. `diverged`) wins over the driver's.

        Args:
            trial_id: Ray trial id (ignored when `run_id` is given).
            status: `hcl.status` to set; the MLflow status follows `MLFLOW_STATUS_OF_TRIAL`.
            regime: `hcl.regime` to set, if known.
            run_id: The trial's run id, when the trainable reported it.
            error: Why the trial failed (its last traceback), kept as `hcl.error` (the last
                `MAX_ERROR_CHARS` characters).

        Returns:
            Whether a RUNNING run was found and closed.
        """
        status = _terminal_status(status)
        _check_regime(regime)
        if run_id is not None:
            runs = [_call(partial(self._client.get_run, run_id), "read a run", self.call_timeout_s)]
        elif trial_id is not None:
            runs = self._trial_runs(f" and tags.`hcl.trial_id` = {_quoted(trial_id)}")
        else:
            raise ValueError("close_trial needs a trial_id or a run_id")
        running = [run for run in runs if run.info.status == "RUNNING"]
        for run in running:
            _close_trial_run(
                self._client, run.info.run_id, status, regime, self.call_timeout_s, error
            )
        return bool(running)

    def close_dangling_trials(self, status: TrialStatus = "killed") -> int:
        """Close every child run still RUNNING (when a study ends or resumes).

        Returns:
            How many runs were closed.
        """
        status = _terminal_status(status)
        dangling = self._trial_runs(" and attributes.status = 'RUNNING'")
        for run in dangling:
            _close_trial_run(self._client, run.info.run_id, status, None, self.call_timeout_s)
        return len(dangling)

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set tags on the parent run (values are converted to strings)."""
        _set_tags(self._client, self.run_id, tags, self.call_timeout_s)

    def set_regime_counts(self, counts: dict[str, int]) -> None:
        """Tag the parent run `hcl.regime_count.<regime>` with `counts`, deleting the counts
        of regimes no trial has any more (e.g. `failed` after the failed trials were run
        again)."""
        run = _call(partial(self._client.get_run, self.run_id), "read a run", self.call_timeout_s)
        wanted = {f"{REGIME_COUNT_TAG}{regime}": str(count) for regime, count in counts.items()}
        for stale in set(run.data.tags) - set(wanted):
            if stale.startswith(REGIME_COUNT_TAG):
                delete = partial(self._client.delete_tag, self.run_id, stale)
                _call(delete, "set tags", self.call_timeout_s)
        self.set_tags(wanted)

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        """Upload the files under `local_dir` to the parent run (under `artifact_path`)."""
        upload = partial(self._client.log_artifacts, self.run_id, str(local_dir), artifact_path)
        _call(upload, "upload artifacts", self.call_timeout_s)

    def log_dict(self, dictionary: dict[str, Any], artifact_file: str) -> None:
        """Store `dictionary` as a JSON or YAML artifact (chosen by the file's extension)."""
        upload = partial(self._client.log_dict, self.run_id, dictionary, artifact_file)
        _call(upload, "upload an artifact", self.call_timeout_s)

    def finish(self, status: RunEndStatus = "FINISHED") -> None:
        """Close the parent run with an MLflow status (FINISHED, FAILED or KILLED)."""
        if status not in RUN_END_STATUSES:
            raise ValueError(f"status must be one of {RUN_END_STATUSES}, got {status!r}")
        terminate = partial(self._client.set_terminated, self.run_id, status)
        _call(terminate, "close the study run", self.call_timeout_s)


class TrialRun:
    """A worker's handle on one trial's child run, with buffered, retried metric logging.

    Attributes:
        run_id: The child run.
        logged_steps: Per metric, the highest epoch handed to `log_epoch` (or found in the
            run when it was reopened). `log_epoch` skips a metric at or below its step.
        flush_timeout_s: Deadline for retried calls and for the final flush in `finish`.
    """

    def __init__(
        self,
        tracking_uri: str,
        run_id: str,
        logged_steps: dict[str, int] | None = None,
        flush_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> None:
        self._client = MlflowClient(tracking_uri)
        self.run_id = run_id
        self.logged_steps = dict(logged_steps or {})
        self.flush_timeout_s = flush_timeout_s
        self._pending: list[list[Metric]] = []

    @classmethod
    def open(
        cls,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        trial_id: str,
        params: dict[str, Any],
        study_name: str,
        run_name: str | None = None,
        flush_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> TrialRun:
        """Create the trial's child run, or reopen the one tagged with `trial_id`.

        Args:
            tracking_uri: MLflow tracking URI.
            experiment_id: The study's experiment (`StudyRun.experiment_id`).
            parent_run_id: The study's parent run (`StudyRun.run_id`).
            trial_id: Ray trial id, stored as `hcl.trial_id`.
            params: The trial config (nested or dotted keys), logged as flattened params.
            study_name: Stored as `hcl.study`.
            run_name: Run name of a new run; the trial id when None.
            flush_timeout_s: Deadline for retried calls and for the final flush in `finish`.

        Raises:
            TrackingError: MLflow could not be reached, refused a call, or the reopened run
                holds different params.
        """
        client = MlflowClient(tracking_uri)
        filter_string = (
            f"{_trials_filter(parent_run_id)} and tags.`hcl.trial_id` = {_quoted(trial_id)}"
        )
        tags = {
            "mlflow.parentRunId": parent_run_id,
            "hcl.role": "trial",
            "hcl.trial_id": trial_id,
            "hcl.study": study_name,
            "hcl.status": "running",
        }
        create = partial(client.create_run, experiment_id, run_name=run_name or trial_id, tags=tags)
        run, existed = _find_or_create_run(
            client, experiment_id, filter_string, create, "create the trial run", flush_timeout_s
        )
        run_id = run.info.run_id
        conflicts = _param_conflicts(params, run.data.params)
        if conflicts:  # refused before the run is reopened
            raise TrackingError(
                f"Trial {trial_id} found run {run_id}, which holds a different config: "
                + ", ".join(conflicts[:10])
            )
        logged_steps = {}
        if existed:
            reopen = partial(client.update_run, run_id, status="RUNNING")
            _call(reopen, "reopen the trial run", flush_timeout_s)
            _set_tags(client, run_id, {"hcl.status": "running"}, flush_timeout_s)
            if ERROR_TAG in run.data.tags:  # a failed trial retried: its error is past
                _call(partial(client.delete_tag, run_id, ERROR_TAG), "set tags", flush_timeout_s)
            logged_steps = _logged_steps(client, run, flush_timeout_s)
        _log_params(client, run_id, params, run.data.params, flush_timeout_s)
        return cls(tracking_uri, run_id, logged_steps, flush_timeout_s)

    @property
    def last_logged_step(self) -> int:
        """The highest epoch logged for any metric; -1 for a new run."""
        return max(self.logged_steps.values(), default=-1)

    @property
    def pending_epochs(self) -> int:
        """How many epochs of metrics wait in the buffer for the server."""
        return len(self._pending)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Log one epoch's metrics at `step = epoch` in one request.

        A metric already logged at this epoch or later is skipped (a retried trial re-runs
        epochs with identical values); per metric, because a file store writes one file per
        metric, so a worker killed mid-epoch leaves some of its metrics logged. When the
        server cannot be reached, the metrics stay buffered and are sent, in step order, by
        the next call or by `finish`.

        Raises:
            TrackingError: The server refused the metrics (e.g. an invalid key).
        """
        unlogged = [key for key in metrics if epoch > self.logged_steps.get(key, -1)]
        if not unlogged:
            return
        timestamp = int(time.time() * 1000)
        self._pending.append(
            [Metric(key, float(metrics[key]), timestamp, epoch) for key in unlogged]
        )
        self.logged_steps.update(dict.fromkeys(unlogged, epoch))
        self._flush_once()

    def _flush_once(self) -> Exception | None:
        """Send buffered epochs in order until one fails; returns that (transient) error.

        Raises:
            TrackingError: The server refused an epoch's metrics (that epoch is dropped).
        """
        while self._pending:
            try:
                with _fail_fast_http():
                    self._client.log_batch(self.run_id, metrics=self._pending[0])
            except (MlflowException, requests.RequestException) as error:
                if not _is_transient(error):
                    refused = self._pending.pop(0)
                    raise TrackingError(
                        f"MLflow refused the metrics of step {refused[0].step} of run "
                        f"{self.run_id}: {error}"
                    ) from error
                logger.warning(
                    "MLflow unreachable; %d epoch(s) of metrics buffered: %s",
                    len(self._pending),
                    error,
                )
                return error
            self._pending.pop(0)
        return None

    def flush(self) -> None:
        """Send the whole buffer, retrying until `flush_timeout_s` has passed.

        The buffer lives in memory: call this before saving a checkpoint past the last sent
        epoch, so a crashed worker's retry does not resume beyond metrics that never arrived.

        Raises:
            TrackingError: Epochs are still unsent at the deadline (they stay buffered).
        """
        deadline = time.monotonic() + self.flush_timeout_s
        pause_s = 0.5
        while (error := self._flush_once()) is not None:
            if time.monotonic() + pause_s > deadline:
                steps = [batch[0].step for batch in self._pending if batch]
                raise TrackingError(
                    f"{len(self._pending)} epoch(s) of metrics of run {self.run_id} "
                    f"(steps {steps[0]}..{steps[-1]}) could not be sent to the tracking server "
                    f"within {self.flush_timeout_s:.0f} s: {error}"
                ) from error
            time.sleep(pause_s)
            pause_s = min(pause_s * 2, 5.0)

    def log_final_artifacts(self, class_means: np.ndarray, spectra: np.ndarray) -> None:
        """Upload `class_means.npy` (epochs, C, d), `spectrum.npy` (epochs, r), `spectrum.png`.

        Raises:
            TrackingError: The upload did not succeed within `flush_timeout_s`.
        """
        with tempfile.TemporaryDirectory(prefix="hcl-artifacts-") as folder:
            np.save(Path(folder) / "class_means.npy", class_means)
            np.save(Path(folder) / "spectrum.npy", spectra)
            spectrum_figure(np.asarray(spectra)[-1]).savefig(Path(folder) / "spectrum.png")
            upload = partial(self._client.log_artifacts, self.run_id, folder)
            _call(upload, "upload the trial's artifacts", self.flush_timeout_s)

    def finish(self, status: TrialStatus, regime: Regime | None = None) -> None:
        """Flush buffered metrics, set `hcl.status` / `hcl.regime` and close the run.

        Raises:
            TrackingError: The buffer or the closing calls could not be sent within
                `flush_timeout_s` (the run then stays RUNNING for the driver's sweep).
        """
        status = _terminal_status(status)
        _check_regime(regime)
        self.flush()
        _close_trial_run(self._client, self.run_id, status, regime, self.flush_timeout_s)


def _logged_steps(client: MlflowClient, run: Run, timeout_s: float) -> dict[str, int]:
    """The highest step logged for each metric of `run`."""
    logged = {}
    for key in run.data.metrics:
        history = _call(
            partial(client.get_metric_history, run.info.run_id, key), "read metrics", timeout_s
        )
        logged[key] = max((metric.step for metric in history), default=-1)
    return logged


def spectrum_figure(spectrum: np.ndarray) -> Figure:
    """The normalized spectrum (sorted, divided by its largest value) on a log-scale y axis."""
    figure = Figure(figsize=(5, 3.5), layout="constrained")
    axes = figure.add_subplot()
    values = np.sort(np.asarray(spectrum, dtype=float).ravel())[::-1]
    values = values[np.isfinite(values) & (values > 0)]
    if values.size:
        axes.semilogy(np.arange(1, values.size + 1), values / values[0], marker="o", markersize=3)
    else:
        axes.text(0.5, 0.5, "no finite positive values (diverged?)", ha="center", va="center")
    axes.set_xlabel("index (sorted)")
    axes.set_ylabel("normalized singular value")
    axes.set_title("class-mean spectrum, final epoch")
    return figure


@dataclass(frozen=True)
class TrialRecord:
    """One trial's child run as the analysis reads it (latest metric values)."""

    run_id: str
    trial_id: str
    mlflow_status: str
    status: str
    regime: str | None
    params: dict[str, str]
    metrics: dict[str, float]
    start_time_ms: int | None = None
    error: str = ""  # `hcl.error` of a failed trial: the end of its traceback


@dataclass(frozen=True)
class StudyRecord:
    """A study's parent run and its trials, as the analysis reads them."""

    experiment_id: str
    run_id: str
    status: str  # the parent run's MLflow status: FINISHED once the study is complete
    params: dict[str, str]
    tags: dict[str, str]
    trials: list[TrialRecord]


def load_study(
    tracking_uri: str, study_name: str, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> StudyRecord:
    """Read a study's parent run and all its trial runs.

    Raises:
        UserError: No study of that name exists at `tracking_uri`.
    """
    client = MlflowClient(tracking_uri)
    find = partial(client.get_experiment_by_name, study_name)
    experiment = _call(find, "find the experiment", timeout_s)
    missing = UserError(
        f"No study named {study_name!r} at tracking_uri {_redacted(tracking_uri)!r}."
    )
    if experiment is None:
        raise missing
    study_filter = _study_filter(study_name)
    parents = _search_all_runs(client, experiment.experiment_id, study_filter, timeout_s)
    if not parents:
        raise missing
    parent = parents[0]
    children = _search_all_runs(
        client, experiment.experiment_id, _trials_filter(parent.info.run_id), timeout_s
    )
    trials = [
        TrialRecord(
            run_id=run.info.run_id,
            trial_id=run.data.tags.get("hcl.trial_id", ""),
            mlflow_status=run.info.status,
            status=run.data.tags.get("hcl.status", ""),
            regime=run.data.tags.get("hcl.regime"),
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            start_time_ms=run.info.start_time,
            error=run.data.tags.get(ERROR_TAG, ""),
        )
        for run in children
    ]
    return StudyRecord(
        experiment_id=experiment.experiment_id,
        run_id=parent.info.run_id,
        status=parent.info.status,
        params=dict(parent.data.params),
        tags=dict(parent.data.tags),
        trials=trials,
    )


def metric_history(
    tracking_uri: str, run_id: str, key: str, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> list[tuple[int, float]]:
    """`(step, value)` pairs of one metric of a run, sorted by step."""
    client = MlflowClient(tracking_uri)
    history = _call(partial(client.get_metric_history, run_id, key), "read metrics", timeout_s)
    return sorted((metric.step, metric.value) for metric in history)


def download_artifact(
    tracking_uri: str,
    run_id: str,
    artifact_path: str,
    destination: Path,
    timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
) -> Path:
    """Download one artifact (file or folder) of a run into `destination`; returns its path."""
    client = MlflowClient(tracking_uri)
    destination.mkdir(parents=True, exist_ok=True)
    download = partial(client.download_artifacts, run_id, artifact_path, str(destination))
    return Path(_call(download, "download an artifact", timeout_s))


BOUNDARY_SEARCH_ARTIFACT = "boundary_search.json"
"""A boundary-search study's final level set, on its parent run."""


def read_json_artifact(
    tracking_uri: str, run_id: str, artifact_path: str, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> Any | None:
    """A run's JSON artifact (at the run's artifact root), or None when the run has none."""
    client = MlflowClient(tracking_uri)
    listed = _call(partial(client.list_artifacts, run_id), "list artifacts", timeout_s)
    if artifact_path not in {entry.path for entry in listed}:
        return None
    with tempfile.TemporaryDirectory(prefix="hcl-json-") as folder:
        path = download_artifact(tracking_uri, run_id, artifact_path, Path(folder), timeout_s)
        return json.loads(path.read_text(encoding="utf-8"))


BULK_HISTORY_ENDPOINT = "/api/2.0/mlflow/metrics/get-history-bulk-interval"
BULK_HISTORY_MAX_RUNS = 100
"""Run ids per bulk-history request (the server's limit)."""
BULK_HISTORY_MAX_POINTS = 2500
"""Points per run the bulk-history endpoint returns at most (it samples longer histories)."""

MetricPoint = tuple[str, str, int, float]
"""`(run_id, key, step, value)` of one logged metric value."""


def metric_histories(
    tracking_uri: str,
    run_keys: Mapping[str, Iterable[str]],
    timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
) -> list[MetricPoint]:
    """Every logged value of the named metrics of many runs, in few requests.

    Against an HTTP(S) server, one `metrics/get-history-bulk-interval` request reads one metric
    of up to `BULK_HISTORY_MAX_RUNS` runs; a run that comes back with `BULK_HISTORY_MAX_POINTS`
    points may have been sampled and is re-read whole with `get_metric_history`. Other stores
    (SQLite, PostgreSQL, local folders) are read with one `get_metric_history` per run and
    metric, which costs no HTTP round trip.

    Args:
        tracking_uri: MLflow tracking URI.
        run_keys: Run id -> the metric keys to read for that run.
        timeout_s: Deadline of each retried call.

    Returns:
        `(run_id, key, step, value)` rows sorted by run, key and step. Values are as stored
        (NaN stays NaN; MLflow stores +/-inf as +/-1.8e308).

    Raises:
        TrackingError: MLflow could not be reached or refused a call.
    """
    wanted = {run_id: sorted(set(keys)) for run_id, keys in run_keys.items()}
    if urlsplit(tracking_uri).scheme.lower() in ("http", "https"):
        points = _bulk_histories(tracking_uri, wanted, timeout_s)
    else:
        points = [
            (run_id, key, step, value)
            for run_id, keys in wanted.items()
            for key in keys
            for step, value in metric_history(tracking_uri, run_id, key, timeout_s)
        ]
    return sorted(points, key=lambda point: point[:3])


def _bulk_histories(
    tracking_uri: str, run_keys: dict[str, list[str]], timeout_s: float
) -> list[MetricPoint]:
    """`metric_histories` through the REST bulk-history endpoint of a tracking server."""
    creds = get_default_host_creds(tracking_uri)
    runs_of_key: dict[str, list[str]] = {}
    for run_id, keys in run_keys.items():
        for key in keys:
            runs_of_key.setdefault(key, []).append(run_id)
    points: list[MetricPoint] = []
    for key, run_ids in runs_of_key.items():
        for start in range(0, len(run_ids), BULK_HISTORY_MAX_RUNS):
            params = {
                "run_ids": run_ids[start : start + BULK_HISTORY_MAX_RUNS],
                "metric_key": key,
                "max_results": BULK_HISTORY_MAX_POINTS,
            }
            request = partial(http_request_safe, creds, BULK_HISTORY_ENDPOINT, "GET", params=params)
            reply = _call(request, "read metric histories", timeout_s).json()
            batch = [
                # Proto JSON leaves out fields at their default (step 0, value 0.0).
                (metric["run_id"], key, int(metric.get("step", 0)), float(metric.get("value", 0.0)))
                for metric in reply.get("metrics", [])
            ]
            counts = Counter(run_id for run_id, *_ in batch)
            sampled = {
                run_id for run_id, count in counts.items() if count >= BULK_HISTORY_MAX_POINTS
            }
            points += [point for point in batch if point[0] not in sampled]
            points += [
                (run_id, key, step, value)
                for run_id in sorted(sampled)
                for step, value in metric_history(tracking_uri, run_id, key, timeout_s)
            ]
    return points
