"""Run and resume studies: validate, connect Ray, open the MLflow parent run, fit.

Every check that can fail on user input (spec, tracking URI, data, Ray address, GPUs)
runs before the MLflow parent run is created or a trial is started.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hcl_study.commands import command
from hcl_study.config import read_yaml_file, with_assignments
from hcl_study.errors import StudyInterrupted, TrackingError, UserError
from hcl_study.study.spec import StudySpec, parse_study_spec

if TYPE_CHECKING:
    from ray.tune import ExperimentAnalysis, ResultGrid, Tuner

    from hcl_study.study.boundary_search import BoundarySearcher
    from hcl_study.tracking import RunEndStatus, StudyRun

logger = logging.getLogger(__name__)

STUDY_FILE = "study.json"
SPEC_FILE = "spec.yaml"
STUDIES_DIR = "studies"

os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@dataclass
class StudyLocation:
    """Where a study lives; written to `<study_dir>/study.json` so `resume` finds it all."""

    name: str
    study_dir: str
    storage_path: str
    tracking_uri: str
    experiment_id: str = ""
    parent_run_id: str = ""
    address: str = ""  # the Ray cluster it ran on ("" for local Ray), where resume goes too

    @property
    def experiment_path(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.name}"

    def save(self) -> None:
        Path(self.study_dir, STUDY_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, study_dir: Path) -> StudyLocation:
        return cls(**json.loads((study_dir / STUDY_FILE).read_text()))


@dataclass
class StudySummary:
    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    regimes: dict[str, int]
    best: dict[str, Any] | None
    num_trials: int

    def ui_command(self) -> str:
        """How to open the study in the MLflow UI (any password in the URI redacted)."""
        from hcl_study.tracking import redacted_uri

        uri = redacted_uri(self.tracking_uri)
        if uri.startswith(("http://", "https://")):
            return f"open {uri.rstrip('/')}/#/experiments/{self.experiment_id}"
        return f"{command('mlflow')} ui --backend-store-uri {uri}"


def locate(spec: StudySpec, *, tracking_uri: str | None, storage: str | None) -> StudyLocation:
    from hcl_study.tracking import default_tracking_uri

    study_dir = (Path(STUDIES_DIR) / spec.name).resolve()
    storage_path = storage or spec.storage_path or str(study_dir / "ray")
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).resolve())
    uri = (
        tracking_uri
        or spec.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or default_tracking_uri(study_dir)
    )
    return StudyLocation(spec.name, str(study_dir), storage_path, uri)


def check_local_data(spec: StudySpec) -> None:
    """Fail early when a data set any trial would use is missing or incomplete.

    Checks the base and every `data.*` value of the space (local Ray only: the nodes of a
    cluster may hold the data where this machine does not).
    """
    from hcl_study.data import check_data_available

    try:
        check_data_available(spec.base_config.data)
    except UserError as error:  # its messages name the field as in a training config
        message = str(error)
        raise UserError(f"base.{message}" if message.startswith("data.") else message) from None
    for path, entry in spec.space.items():
        if path.startswith("data."):
            for value in entry.values_to_check():
                try:
                    check_data_available(spec.trial_config({path: value}).data)
                except UserError as error:
                    raise UserError(f"space.{path} allows {value!r}: {error}") from None


def _check_address_answers(address: str) -> None:
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"--address / RAY_ADDRESS: {address!r} is not a Ray address; give 'auto', "
            "HOST:PORT of a running head node (e.g. 10.0.0.5:6379) or ray://HOST:10001."
        )
    try:
        speaks_grpc = _speaks_grpc(host, int(port), timeout_s=10)
    except OSError as error:
        raise UserError(
            f"--address / RAY_ADDRESS: no Ray head answers at {address} ({error}). Start one "
            "with `ray start --head`, or leave --address out to run on local Ray."
        ) from None
    if not speaks_grpc:
        # ray.init would retry such a port for minutes before giving up.
        raise UserError(
            f"--address / RAY_ADDRESS: something answers at {address}, but not a Ray head (no "
            "gRPC); give the head's GCS port (6379 by default) or ray://HOST:10001."
        )


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(host: str, port: int, timeout_s: float) -> bool:
    """Whether `host:port` answers an HTTP/2 preface with a SETTINGS frame, as gRPC does.

    With RAY_USE_TLS set the port speaks TLS first, so only the connection is checked.

    Raises:
        OSError: Nothing accepts a connection there (refused, unreachable, timed out).
    """
    with socket.create_connection((host, port), timeout=timeout_s) as connection:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return True
        connection.sendall(_HTTP2_PREFACE)
        header = b""
        try:
            while len(header) < 9:
                chunk = connection.recv(9 - len(header))
                if not chunk:
                    return False
                header += chunk
        except OSError:  # e.g. a server that waits for more and times out
            return False
    return header[3] == 4  # a gRPC server's first frame is SETTINGS (type 4)


class _DropMessages(logging.Filter):
    """Drops the records whose message contains `fragment`."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


# Tune's "Resume experiment with: Tuner.restore(...)": hcl-study prints its own.
_TUNES_RESUME_HINT = _DropMessages("Resume experiment with")
# "Trials did not complete: [...]": the summary counts the failed trials.
_TUNES_INCOMPLETE_TRIALS = _DropMessages("Trials did not complete")
# One per report of a retried failed trial: Optuna keeps that trial as failed, as it must.
_OPTUNA_RETRY_NOTICE = _DropMessages("Received additional result for trial")


def quiet_libraries() -> None:
    """Keep Ray, Tune, MLflow and Optuna to warnings and errors on the console, and
    failed trials' tracebacks off it: the study prints a line per ended trial instead
    (`--verbose` leaves them as they are)."""
    import optuna

    for name in ("ray", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A notice on every ray.init, not a warning about this study.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    logging.getLogger("ray.tune.tune").addFilter(_TUNES_RESUME_HINT)
    logging.getLogger("ray.tune.tune").addFilter(_TUNES_INCOMPLETE_TRIALS)
    # Each failed attempt's traceback: the trial's progress line gives its error instead.
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    logging.getLogger("ray.tune.search.optuna.optuna_search").addFilter(_OPTUNA_RETRY_NOTICE)
    # Tune's new output engine prints its experiment header and paths even at verbose=0.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # num_to_keep forces a state snapshot per checkpoint; the warning says nothing to users.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def connect_ray(address: str | None, spec: StudySpec, *, verbose: bool = False) -> None:
    """Join a cluster (`--address`, `RAY_ADDRESS`) or start local Ray; check resources.

    Without `verbose`, the trials' own output stays in Ray's log files, and a failed trial's
    traceback in its error.txt and its MLflow run (its progress line gives the error).
    """
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "auto":
        _check_address_answers(address)
    if not address:  # local Ray gets this machine's CPUs and GPUs: check before starting it
        _check_resources(spec, {"CPU": float(os.cpu_count() or 1), "GPU": float(_local_gpus())})
    from hcl_study.tracking import tracking_environment

    # Trials log to MLflow from other processes and nodes: they need the same credentials.
    runtime_env = {"env_vars": tracking_environment()}
    if not verbose:
        quiet_libraries()
    common = {
        "runtime_env": runtime_env,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.WARNING,
    }
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(include_dashboard=False, num_gpus=_local_gpus(), **common)
    except ConnectionError as error:
        raise UserError(
            f"--address / RAY_ADDRESS: cannot join the Ray cluster at {address}: {error}"
        ) from None
    try:
        _check_resources(spec, ray.cluster_resources())
    except UserError:
        ray.shutdown()
        raise


def _check_resources(spec: StudySpec, available: dict[str, float]) -> None:
    for resource, wanted in (("CPU", spec.resources.cpu), ("GPU", spec.resources.gpu)):
        have = available.get(resource, 0.0)
        if wanted > have:
            raise UserError(
                f"resources.{resource.lower()}: each trial asks for {wanted:g} {resource}, but the "
                f"Ray cluster has {have:g}; allowed: at most {have:g}."
            )


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def run_study(
    spec_path: Path,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage: str | None = None,
    assignments: Sequence[str] = (),
    verbose: bool = False,
) -> StudySummary:
    """Validate and run a study from its spec file, with `--set key.path=value`
    `assignments` applied to it.

    Running a spec whose study already exists continues that study (or, when it is
    complete, reports it again) instead of starting over. `verbose` adds the libraries'
    logs, the trials' own output and tracebacks to the line per ended trial.
    """
    from hcl_study.tracking import check_study_accepted, check_tracking_uri

    raw = with_assignments(read_yaml_file(spec_path), assignments)
    given = "".join(f" --set {text}" for text in assignments)
    spec = parse_study_spec(raw, source=f"study spec {spec_path}{given}")
    location = locate(spec, tracking_uri=tracking_uri, storage=storage)
    existing = Path(location.study_dir, STUDY_FILE)
    if existing.exists():
        # Running a spec again continues (or, when complete, re-reports) the same study.
        _require_same_spec(existing.parent, spec)
        _require_same_location(
            StudyLocation.load(existing.parent),
            location,
            tracking_uri=tracking_uri,
            storage=storage,
        )
        return resume_study(location.study_dir, address=address, verbose=verbose)
    location.address = address or os.environ.get("RAY_ADDRESS") or ""
    if not location.address:
        check_local_data(spec)
    check_tracking_uri(location.tracking_uri)
    check_study_accepted(location.tracking_uri, spec.name, _logged_spec(spec))
    connect_ray(location.address or None, spec, verbose=verbose)
    Path(location.study_dir).mkdir(parents=True, exist_ok=True)
    stored_spec = Path(location.study_dir, SPEC_FILE)
    stored_spec.write_text(
        Path(spec_path).read_text() if not assignments else yaml.safe_dump(raw, sort_keys=False)
    )
    return _fit(spec, location, spec_path=stored_spec, restore=False)


def _require_same_spec(study_dir: Path, spec: StudySpec) -> None:
    stored = parse_study_spec(yaml.safe_load((study_dir / SPEC_FILE).read_text()))
    if stored != spec:
        raise UserError(
            f"name: a study named {spec.name!r} already exists in {study_dir} with a different "
            "spec; give the new spec another name, or remove that folder to start over."
        )


def _require_same_location(
    stored: StudyLocation,
    asked: StudyLocation,
    *,
    tracking_uri: str | None,
    storage: str | None,
) -> None:
    """A study continues where it lives: refuse a --tracking-uri or --storage elsewhere."""
    from hcl_study.tracking import redacted_uri

    for option, given, kept, wanted in (
        ("--tracking-uri", tracking_uri, stored.tracking_uri, asked.tracking_uri),
        ("--storage", storage, stored.storage_path, asked.storage_path),
    ):
        if given is not None and kept != wanted:
            raise UserError(
                f"{option}: the study {stored.name!r} already exists in {stored.study_dir} and "
                f"keeps using {redacted_uri(kept)}; leave {option} out to continue it there, or "
                "give the spec another name to start a new study at the new place."
            )


def find_study(name_or_path: str) -> Path:
    for candidate in (Path(name_or_path), Path(STUDIES_DIR) / name_or_path):
        if (candidate / STUDY_FILE).exists():
            return candidate.resolve()
    raise UserError(
        f"NAME_OR_PATH: no study found at {name_or_path!r} or {STUDIES_DIR}/{name_or_path}; give "
        f"the study name or the folder holding {STUDY_FILE}."
    )


def resume_study(
    name_or_path: str,
    *,
    address: str | None = None,
    verbose: bool = False,
    retry_failed: bool = False,
) -> StudySummary:
    """Finish an interrupted study in the same MLflow parent run: `Tuner.restore` of Tune's
    saved state, or, when the study was interrupted before Tune saved a trial, its trials
    from the start. It runs on `address`, else RAY_ADDRESS, else the cluster it ran on.

    With `retry_failed`, trials that failed (used up their `max_failures` retries, e.g.
    while a node or the tracking server was down) run again from their last checkpoints and
    continue their MLflow runs; otherwise a failed trial stays failed.
    """
    from hcl_study.tracking import check_study_accepted, check_tracking_uri

    study_dir = find_study(name_or_path)
    location = StudyLocation.load(study_dir)
    spec = parse_study_spec(yaml.safe_load((study_dir / SPEC_FILE).read_text()))
    check_tracking_uri(location.tracking_uri)
    check_study_accepted(location.tracking_uri, spec.name, _logged_spec(spec))
    restore = _saved_trials(location) > 0
    location.address = address or os.environ.get("RAY_ADDRESS") or location.address
    # A complete study is only reported again, from Tune's saved results: no Ray needed.
    complete = restore and _complete(spec, location, *_ended_trials(location))
    if complete and retry_failed and _failed_trials(location):
        complete = False
    if not complete:
        if not restore and not location.address:
            check_local_data(spec)
        connect_ray(location.address or None, spec, verbose=verbose)
        if not restore:
            _discard_saved_experiment(location)
    return _fit(
        spec,
        location,
        spec_path=study_dir / SPEC_FILE,
        restore=restore,
        complete=complete,
        retry_failed=retry_failed,
    )


def _saved_trials(location: StudyLocation) -> int:
    """How many trials Tune's saved experiment state holds (0 without one)."""
    from ray import tune

    if not tune.Tuner.can_restore(location.experiment_path):
        return 0
    return len(_saved_analysis(location).trials)


def _discard_saved_experiment(location: StudyLocation) -> None:
    """Remove a saved experiment without trials (Tune cannot restore one: its searcher state
    is lost), so that the study starts its trials afresh there."""
    import pyarrow.fs

    filesystem, path = pyarrow.fs.FileSystem.from_uri(location.experiment_path)
    if filesystem.get_file_info(path).type == pyarrow.fs.FileType.Directory:
        filesystem.delete_dir(path)


def _fit(
    spec: StudySpec,
    location: StudyLocation,
    *,
    spec_path: Path,
    restore: bool,
    complete: bool = False,
    retry_failed: bool = False,
) -> StudySummary:
    """Run the study's trials (none when it is `complete`) in its MLflow parent run, then
    check that it completed, log the boundary estimate and summarize it."""
    import ray

    from hcl_study.tracking import BOUNDARY_SEARCH_ARTIFACT, StudyRun

    local_store = location.tracking_uri.startswith("sqlite:")
    try:
        study_run = StudyRun.start_or_resume(
            location.tracking_uri,
            spec.name,
            _logged_spec(spec),
            spec_path,
            # A SQLite store keeps its artifacts beside it, not in ./mlruns of the working dir.
            artifact_location=(
                Path(location.study_dir, "artifacts").as_uri() if local_store else None
            ),
        )
    except BaseException:  # e.g. the server went away since the checks: Ray is not left up
        ray.shutdown()
        raise
    try:  # from here on, the parent run is closed however the study ends
        location.experiment_id, location.parent_run_id = study_run.experiment_id, study_run.run_id
        location.save()
        grid = (
            _saved_results(location)
            if complete
            else _run_trials(
                spec,
                location,
                study_run,
                restore=restore,
                retry_failed=retry_failed,
            )
        )
        study_run.close_dangling_trials(status="killed")
        ended, started = _ended_trials(location)
        if not _complete(spec, location, ended, started):  # Tune caught a signal and returned
            progress = f"{ended} of its {spec.num_trials} trials had ended"
            raise StudyInterrupted(_interrupted_message(spec, location, progress))
        if spec.search.algorithm == "boundary":
            study_run.log_dict(boundary_estimate(spec, location), BOUNDARY_SEARCH_ARTIFACT)
        summary = summarize(spec, location, grid)
        study_run.set_regime_counts(summary.regimes)
    except (KeyboardInterrupt, StudyInterrupted) as interruption:
        _close_unfinished(study_run, "KILLED")
        if isinstance(interruption, KeyboardInterrupt):  # a second Ctrl-C: Tune lets it through
            raise StudyInterrupted(_interrupted_message(spec, location)) from None
        raise
    except TrackingError as error:
        _close_unfinished(study_run, "FAILED")
        raise TrackingError(
            f"{error}. The study {spec.name!r} stopped on it; once the tracking server answers "
            f"again, {command('hcl-study')} resume {spec.name} continues it (with "
            "--retry-failed it also runs the trials that failed their retries while it was "
            "away again)."
        ) from error
    except BaseException:
        _close_unfinished(study_run, "FAILED")
        raise
    study_run.finish("FINISHED")
    return summary


def _logged_spec(spec: StudySpec) -> dict[str, Any]:
    """The spec as the parent run logs it (and as a resumed study must match)."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def _run_trials(
    spec: StudySpec,
    location: StudyLocation,
    study_run: StudyRun,
    *,
    restore: bool,
    retry_failed: bool,
) -> ResultGrid:
    """Fit a new Tuner, or restore Tune's saved one (its failed trials too with
    `retry_failed`); Ray is shut down however it ends."""
    import ray
    from ray import tune

    from hcl_study.trainable import TrialContext, hcl_trainable

    context = TrialContext(
        study_name=spec.name,
        base=spec.base,
        tracking_uri=location.tracking_uri,
        experiment_id=study_run.experiment_id,
        parent_run_id=study_run.run_id,
        checkpoint_every=spec.checkpoint_every,
        gpus_per_trial=spec.resources.gpu,
    )
    try:
        trainable = tune.with_resources(
            tune.with_parameters(hcl_trainable, context=context),
            {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
        )
        if restore:
            # A trial that errored has used up its `max_failures` retries: its FAILED run is
            # final, as in a study that was never interrupted, unless it is retried.
            tuner = tune.Tuner.restore(
                location.experiment_path,
                trainable,
                resume_unfinished=True,
                resume_errored=retry_failed,
            )
        else:
            tuner = _new_tuner(spec, location, trainable, study_run)
        return tuner.fit()
    finally:
        ray.shutdown()


def _new_tuner(
    spec: StudySpec, location: StudyLocation, trainable: Any, study_run: StudyRun
) -> Tuner:
    """A fresh Tuner for the study, its state saved under `location.experiment_path`."""
    from ray import tune

    from hcl_study.study.callbacks import TrialProgress, TrialRunCloser
    from hcl_study.study.search import (
        build_scheduler,
        build_search_algorithm,
        num_samples,
        param_space,
    )

    return tune.Tuner(
        trainable,
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(
            search_alg=build_search_algorithm(spec),
            scheduler=build_scheduler(spec),
            num_samples=num_samples(spec),
            reuse_actors=True,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=location.storage_path,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[
                TrialRunCloser(
                    location.tracking_uri, spec.name, study_run.experiment_id, study_run.run_id
                ),
                TrialProgress(spec.objective.metric, spec.num_trials),
            ],
            # Pickled with the experiment, as are the callbacks: the progress lines, not
            # Tune's tables, whether or not this or a later invocation is --verbose.
            verbose=0,
        ),
    )


def _ended_trials(location: StudyLocation) -> tuple[int, int]:
    """How many trials had ended (terminated or errored), and how many had started.

    Read from the experiment state Tune saved last: when a signal interrupts `fit()`, Tune
    saves that state and only then stops the running trials, which it marks TERMINATED in
    the results `fit()` returns, so only the saved state tells them apart. (0, 0) when a
    signal came before Tune saved anything.
    """
    from ray import tune

    if not tune.Tuner.can_restore(location.experiment_path):
        return 0, 0
    saved = _saved_results(location)
    return saved.num_terminated + saved.num_errors, len(saved)


def _saved_results(location: StudyLocation) -> ResultGrid:
    """The trials' results as Tune saved them last (read from storage, without Ray)."""
    from ray.tune import ResultGrid

    return ResultGrid(_saved_analysis(location))


def _saved_analysis(location: StudyLocation) -> ExperimentAnalysis:
    """Tune's saved experiment state, read without its warning about each trial that has
    no result yet (one cut off before its first epoch): those are expected here."""
    from ray.tune import ExperimentAnalysis

    tune_logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = tune_logger.level
    tune_logger.setLevel(logging.ERROR)
    try:
        return ExperimentAnalysis(location.experiment_path)
    finally:
        tune_logger.setLevel(level)


def _failed_trials(location: StudyLocation) -> int:
    """Trials that failed before their end (an error after the final report does not
    count: the trial had logged everything), as Tune saved them last."""
    from hcl_study.study.callbacks import ran_to_its_end

    return sum(
        result.error is not None and not ran_to_its_end(result.metrics or {})
        for result in _saved_results(location)
    )


def _complete(spec: StudySpec, location: StudyLocation, ended: int, started: int) -> bool:
    """Whether every trial the search meant to run has ended.

    A signal can land while trials run (some not ended) or between one trial's end and the
    next one's start (all ended, but fewer than `num_samples`): both interrupt the study.
    Only the boundary searcher ends early (its `target_error` reached, or nothing left to try).
    """
    if not 0 < ended == started:
        return False
    if started == spec.num_trials:
        return True
    if spec.search.algorithm != "boundary":
        return False
    return saved_boundary_searcher(spec, location).finished


def _close_unfinished(study_run: StudyRun, status: RunEndStatus) -> None:
    """End the runs of a study that did not complete; `hcl-study resume` reopens them.

    Best effort: a tracking failure is logged, so that it does not hide why the study ended.
    """
    try:
        study_run.close_dangling_trials(status="killed")
        study_run.finish(status)
    except Exception:  # noqa: BLE001 - the caller re-raises the study's own error
        logger.exception("could not close the MLflow runs of study %s", study_run.study_name)


def _interrupted_message(spec: StudySpec, location: StudyLocation, progress: str = "") -> str:
    where = f" ({progress})" if progress else ""
    saved = (
        f" and Tune saved its state in {location.experiment_path}"
        if _saved_trials(location)
        else " (before Tune saved any trial: resume starts its trials)"
    )
    return (
        f"study {spec.name!r} was interrupted{where}; its MLflow parent run "
        f"{location.parent_run_id} is marked KILLED{saved}. Continue it with: "
        f"{command('hcl-study')} resume {spec.name}"
        + (f" --address {location.address}" if location.address else "")
    )


def boundary_estimate(spec: StudySpec, location: StudyLocation) -> dict[str, Any]:
    """The boundary searcher's final level set, read back from Tune's saved searcher state."""
    searcher = saved_boundary_searcher(spec, location)
    return {
        "order_parameter": spec.search.order_parameter,
        "threshold": spec.search.threshold,
        "estimates": [estimate.to_dict() for estimate in searcher.estimate()],
    }


def saved_boundary_searcher(spec: StudySpec, location: StudyLocation) -> BoundarySearcher:
    """The study's boundary searcher as Tune saved it last."""
    from hcl_study.study.search import boundary_searcher

    searcher = boundary_searcher(spec)
    searcher.restore_from_dir(location.experiment_path)
    return searcher


def best_trial_result(results: Any, metric: str, mode: str) -> Any:
    """The result whose final `metric` is best and finite; None without one. Trials that
    did not run to their end (failed, stopped early) have no final value.

    Ties go to the smallest trial id, so that a study reports the same best trial every
    time (a restored result grid lists its trials in another order).
    """
    from hcl_study.study.callbacks import ran_to_its_end

    scored = []
    for result in results:
        metrics = result.metrics or {}
        value = metrics.get(metric)
        if not ran_to_its_end(metrics):  # failed or stopped early: not its final value
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            scored.append(
                (value if mode == "min" else -value, str(metrics.get("trial_id")), result)
            )
    return min(scored, key=lambda item: item[:2])[2] if scored else None


def summarize(spec: StudySpec, location: StudyLocation, grid: Any) -> StudySummary:
    from hcl_study.study.callbacks import ran_to_its_end

    regimes: Counter[str] = Counter()
    for result in grid:
        metrics = result.metrics or {}
        if ran_to_its_end(metrics):
            regimes[metrics.get("regime", "unknown")] += 1
        else:  # its last regime is not final
            regimes["failed" if result.error is not None else "stopped"] += 1
    best = None
    best_result = best_trial_result(grid, spec.objective.metric, spec.objective.mode)
    if best_result is not None:
        best = {
            "metric": spec.objective.metric,
            "value": best_result.metrics.get(spec.objective.metric),
            "params": best_result.config,
            "regime": best_result.metrics.get("regime"),
            "mlflow_run_id": best_result.metrics.get("mlflow_run_id"),
        }
    return StudySummary(
        name=spec.name,
        tracking_uri=location.tracking_uri,
        experiment_id=location.experiment_id,
        parent_run_id=location.parent_run_id,
        regimes=dict(regimes),
        best=best,
        num_trials=len(grid),
    )
