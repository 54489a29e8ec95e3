"""hcl_study.tracking against a real `mlflow server` on 127.0.0.1 and real SQLite stores."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow_server import ADMIN_USERNAME, MlflowServer, free_port
from reply_dropping_proxy import ReplyDroppingProxy

from hcl_study.errors import UserError
from hcl_study.tracking import (
    MAX_ERROR_CHARS,
    StudyRun,
    TrackingError,
    TrialRun,
    check_tracking_uri,
    default_tracking_uri,
    download_artifact,
    load_study,
    metric_history,
)

EPOCHS = 3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# What a Ray worker does with a trial: open the child run, log epochs, upload, close.
WORKER_SCRIPT = """
import json, sys
import numpy as np
from hcl_study.tracking import TrialRun

job = json.loads(sys.argv[1])
trial = TrialRun.open(
    job["uri"], job["experiment_id"], job["parent_run_id"], job["trial_id"], job["config"],
    job["study"],
)
for epoch in range(job["epochs"]):
    loss = float("nan") if job["diverge"] and epoch == job["epochs"] - 1 else 1.0 / (epoch + 1)
    trial.log_epoch(epoch, {"loss": loss, "nc1": 0.5 * epoch})
classes, dim = job["config"]["data"]["num_classes"], 2
trial.log_final_artifacts(
    np.ones((job["epochs"], classes, dim)), np.tile([2.0, 1.0], (job["epochs"], 1))
)
trial.finish(job["status"], job["regime"])
"""


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def trial_config(beta: float) -> dict:
    return {"loss": {"beta": beta, "tau": 0.5}, "data": {"num_classes": 3}, "epochs": EPOCHS}


def start_worker(job: dict) -> subprocess.Popen[bytes]:
    """Run `WORKER_SCRIPT` in a fresh interpreter, as a Ray worker process would."""
    return subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, json.dumps(job)], stderr=subprocess.PIPE
    )


def steps(uri: str, run_id: str, key: str) -> list[int]:
    return [step for step, _ in metric_history(uri, run_id, key)]


def open_trial(study: StudyRun, trial_id: str, **options: float) -> TrialRun:
    return TrialRun.open(
        study.tracking_uri,
        study.experiment_id,
        study.run_id,
        trial_id,
        trial_config(1.0),
        study.study_name,
        **options,
    )


def test_study_and_trials_logged_from_worker_processes(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    name = unique_name("workers")
    spec = {"name": name, "base": trial_config(0.0), "note": "x" * 7000}
    spec_path = tmp_path / "study.yaml"
    spec_path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    study = StudyRun.start_or_resume(mlflow_server.uri, name, spec, spec_path)
    jobs = {
        "t_nc": {"beta": 0.0, "status": "finished", "regime": "NC", "diverge": False},
        "t_div": {"beta": 9.0, "status": "diverged", "regime": "diverged", "diverge": True},
    }
    common = {
        "uri": mlflow_server.uri,
        "experiment_id": study.experiment_id,
        "parent_run_id": study.run_id,
        "study": name,
        "epochs": EPOCHS,
    }
    workers = [
        start_worker({**common, **job, "trial_id": trial_id, "config": trial_config(job["beta"])})
        for trial_id, job in jobs.items()
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr.decode()
    study.set_tags({"hcl.best_trial": "t_nc"})
    study.log_dict({"best": "t_nc"}, "report/summary.json")
    study.finish()

    client = MlflowClient(mlflow_server.uri)
    parent = client.get_run(study.run_id)
    assert parent.info.run_name == name
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["hcl.role"] == "study"
    assert parent.data.tags["hcl.study"] == name
    assert parent.data.tags["hcl.best_trial"] == "t_nc"
    for key in ("version", "ray_version", "torch_version", "mlflow_version", "python_version"):
        assert parent.data.tags[f"hcl.{key}"]
    assert parent.data.params["base.loss.beta"] == "0.0"
    assert parent.data.params["note"] == "x" * 6000
    parent_files = {item.path for item in client.list_artifacts(study.run_id)}
    assert {"spec.yaml", "report"} <= parent_files
    spec_copy = download_artifact(mlflow_server.uri, study.run_id, "spec.yaml", tmp_path / "dl")
    assert yaml.safe_load(spec_copy.read_text(encoding="utf-8"))["name"] == name

    record = load_study(mlflow_server.uri, name)
    assert record.run_id == study.run_id
    assert sorted(trial.trial_id for trial in record.trials) == sorted(jobs)
    for trial in record.trials:
        job = jobs[trial.trial_id]
        run = client.get_run(trial.run_id)
        assert run.data.tags["mlflow.parentRunId"] == study.run_id
        assert run.data.tags["hcl.role"] == "trial"
        assert run.data.tags["hcl.study"] == name
        assert run.info.run_name == trial.trial_id
        assert (trial.status, trial.regime, trial.mlflow_status) == (
            job["status"],
            job["regime"],
            "FINISHED",
        )
        assert trial.params == {
            "loss.beta": str(job["beta"]),
            "loss.tau": "0.5",
            "data.num_classes": "3",
            "epochs": str(EPOCHS),
        }
        for key in ("loss", "nc1"):
            assert steps(mlflow_server.uri, trial.run_id, key) == list(range(EPOCHS))
        files = {item.path for item in client.list_artifacts(trial.run_id)}
        assert files == {"class_means.npy", "spectrum.npy", "spectrum.png"}
        local = tmp_path / trial.trial_id
        png = download_artifact(mlflow_server.uri, trial.run_id, "spectrum.png", local)
        assert png.read_bytes().startswith(PNG_SIGNATURE)
        means = download_artifact(mlflow_server.uri, trial.run_id, "class_means.npy", local)
        assert np.load(means).shape == (EPOCHS, 3, 2)
    diverged = next(trial for trial in record.trials if trial.trial_id == "t_div")
    assert math.isnan(metric_history(mlflow_server.uri, diverged.run_id, "loss")[-1][1])


def test_reopened_trial_continues_its_run_without_duplicate_steps(
    mlflow_server: MlflowServer,
) -> None:
    name = unique_name("reopen")
    study = StudyRun.start_or_resume(mlflow_server.uri, name, {"name": name})
    first = open_trial(study, "trial_a")
    assert first.last_logged_step == -1
    for epoch in range(2):
        first.log_epoch(epoch, {"loss": 1.0 / (epoch + 1)})
    # The worker dies here; Ray retries the trial, which re-runs epochs 0..3.
    retry = open_trial(study, "trial_a")
    assert retry.run_id == first.run_id
    assert retry.last_logged_step == 1
    for epoch in range(4):
        retry.log_epoch(epoch, {"loss": 1.0 / (epoch + 1)})
    retry.finish("failed")
    assert steps(mlflow_server.uri, first.run_id, "loss") == [0, 1, 2, 3]

    again = open_trial(study, "trial_a")
    run = MlflowClient(mlflow_server.uri).get_run(again.run_id)
    assert (again.run_id, again.last_logged_step) == (first.run_id, 3)
    assert (run.info.status, run.data.tags["hcl.status"]) == ("RUNNING", "running")
    with pytest.raises(TrackingError, match=r"loss\.beta"):
        TrialRun.open(
            mlflow_server.uri, study.experiment_id, study.run_id, "trial_a",
            trial_config(2.0), name,
        )  # fmt: skip


def test_retry_after_a_partly_written_epoch_logs_each_metric_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file store (hcl-study refuses one as its URI, but an `mlflow server` can be backed by
    one) writes a file per metric, so a worker killed while writing an epoch leaves only some
    of its metrics at that step. The retry logs the missing ones and no metric twice."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as an `mlflow server` may run it
    uri = str(tmp_path / "mlruns")  # a plain path: MLflow's file store
    study = StudyRun.start_or_resume(uri, "partial-epoch", {"a": 1})
    first = open_trial(study, "trial_a")
    first.log_epoch(0, {"loss": 1.0, "nc1": 0.0})
    MlflowClient(uri).log_metric(first.run_id, "loss", 0.5, step=1)  # killed after this file
    retry = open_trial(study, "trial_a")
    assert retry.logged_steps == {"loss": 1, "nc1": 0} and retry.last_logged_step == 1
    for epoch in range(3):
        retry.log_epoch(epoch, {"loss": 1.0 / (epoch + 1), "nc1": 0.5 * epoch})
    retry.finish("finished")
    assert steps(uri, first.run_id, "loss") == [0, 1, 2]
    assert metric_history(uri, first.run_id, "nc1") == [(0, 0.0), (1, 0.5), (2, 1.0)]


def test_resumed_study_reopens_its_parent_run(mlflow_server: MlflowServer) -> None:
    name = unique_name("resume")
    spec = {"name": name, "search": {"loss.beta": [0, 1, 5]}}
    study = StudyRun.start_or_resume(mlflow_server.uri, name, spec)
    study.finish("KILLED")
    resumed = StudyRun.start_or_resume(mlflow_server.uri, name, spec)
    assert not study.resumed
    assert resumed.resumed
    assert (resumed.run_id, resumed.experiment_id) == (study.run_id, study.experiment_id)
    client = MlflowClient(mlflow_server.uri)
    assert client.get_run(study.run_id).info.status == "RUNNING"
    resumed.finish("FINISHED")
    other_spec = {**spec, "search": {"loss.beta": [2]}, "epochs": 3}
    with pytest.raises(UserError, match=r"search\.loss\.beta"):
        StudyRun.start_or_resume(mlflow_server.uri, name, other_spec)
    refused_by = client.get_run(study.run_id)
    assert refused_by.info.status == "FINISHED", "a refused spec leaves the study as it was"
    assert "epochs" not in refused_by.data.params


def test_trial_run_with_another_config_is_refused_before_it_is_reopened(
    mlflow_server: MlflowServer,
) -> None:
    name = unique_name("trial-config")
    study = StudyRun.start_or_resume(mlflow_server.uri, name, {"name": name})
    trial = open_trial(study, "t0")
    trial.log_epoch(0, {"loss": 1.0})
    trial.finish("finished", "DC")
    with pytest.raises(TrackingError, match=r"different config: loss\.beta"):
        TrialRun.open(
            mlflow_server.uri, study.experiment_id, study.run_id, "t0", trial_config(2.0), name
        )
    run = MlflowClient(mlflow_server.uri).get_run(trial.run_id)
    assert (run.info.status, run.data.tags["hcl.status"]) == ("FINISHED", "finished")


def test_driver_closes_trials_its_workers_left_running(mlflow_server: MlflowServer) -> None:
    name = unique_name("close")
    study = StudyRun.start_or_resume(mlflow_server.uri, name, {"name": name})
    errored, early_stopped, diverged, dangling = (
        open_trial(study, trial_id) for trial_id in ("t_err", "t_asha", "t_div", "t_lost")
    )
    diverged.finish("diverged", "diverged")

    assert study.close_trial("t_err", "failed")
    assert not study.close_trial("t_err", "killed")
    assert study.close_trial(None, "stopped", "partial", run_id=early_stopped.run_id)
    assert not study.close_trial("t_never_started", "failed")
    assert study.close_dangling_trials() == 1

    client = MlflowClient(mlflow_server.uri)

    def outcome(trial: TrialRun) -> tuple[str, str, str | None]:
        run = client.get_run(trial.run_id)
        return run.info.status, run.data.tags["hcl.status"], run.data.tags.get("hcl.regime")

    assert outcome(errored) == ("FAILED", "failed", None)
    assert outcome(early_stopped) == ("FINISHED", "stopped", "partial")
    assert outcome(diverged) == ("FINISHED", "diverged", "diverged")
    assert outcome(dangling) == ("KILLED", "killed", None)


def sqlite_study(tmp_path: Path, name: str = "study") -> StudyRun:
    """A study in a SQLite store of its own under `tmp_path`."""
    return StudyRun.start_or_resume(
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        name,
        {"name": name},
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )


def run_of(study: StudyRun, run_id: str) -> Run:
    return MlflowClient(study.tracking_uri).get_run(run_id)


def test_a_new_trial_run_is_tagged_running(tmp_path: Path) -> None:
    study = sqlite_study(tmp_path)
    trial = open_trial(study, "t0")
    run = run_of(study, trial.run_id)
    assert (run.info.status, run.data.tags["hcl.status"]) == ("RUNNING", "running")


def test_close_trial_keeps_the_end_of_a_long_error(tmp_path: Path) -> None:
    """The last line of a traceback names the exception, so the tag keeps the tail."""
    study = sqlite_study(tmp_path)
    trial = open_trial(study, "t0")
    assert study.close_trial("t0", "failed", error="x" * 5000 + "\nE: last")
    error = run_of(study, trial.run_id).data.tags["hcl.error"]
    assert error.endswith("x\nE: last")
    assert len(error) == MAX_ERROR_CHARS


def test_close_trial_with_a_run_id_closes_that_run_whatever_the_trial_id(tmp_path: Path) -> None:
    study = sqlite_study(tmp_path)
    reported, other = open_trial(study, "t_a"), open_trial(study, "t_b")
    assert study.close_trial("t_b", "killed", run_id=reported.run_id)
    assert run_of(study, reported.run_id).info.status == "KILLED"
    assert run_of(study, other.run_id).info.status == "RUNNING"


def test_statuses_are_case_insensitive_and_bad_statuses_and_regimes_are_refused(
    tmp_path: Path,
) -> None:
    """A refused status or regime raises before the run is touched."""
    study = sqlite_study(tmp_path)
    closed_by_driver, closed_by_worker = open_trial(study, "t_a"), open_trial(study, "t_b")
    with pytest.raises(ValueError, match="regime"):
        study.close_trial("t_a", "stopped", "NCC")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status"):
        study.close_trial("t_a", "done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="regime"):
        closed_by_worker.finish("finished", "nc")  # type: ignore[arg-type]
    for trial in (closed_by_driver, closed_by_worker):
        run = run_of(study, trial.run_id)
        assert (run.info.status, run.data.tags["hcl.status"]) == ("RUNNING", "running")
        assert "hcl.regime" not in run.data.tags
    assert study.close_trial("t_a", "FAILED")  # type: ignore[arg-type]
    closed_by_worker.finish("Finished", "NC")  # type: ignore[arg-type]
    assert run_of(study, closed_by_driver.run_id).data.tags["hcl.status"] == "failed"
    run = run_of(study, closed_by_worker.run_id)
    assert (run.info.status, run.data.tags["hcl.status"]) == ("FINISHED", "finished")

    with pytest.raises(ValueError, match="status must be one of"):
        study.finish("finished")  # type: ignore[arg-type]
    assert run_of(study, study.run_id).info.status == "RUNNING"
    study.finish("KILLED")
    assert run_of(study, study.run_id).info.status == "KILLED"


def test_a_refused_epoch_is_dropped_and_the_next_one_is_logged(tmp_path: Path) -> None:
    """A refusal (4xx) will not pass on a resend: kept in the buffer, it would block every
    later epoch."""
    study = sqlite_study(tmp_path)
    trial = open_trial(study, "t0")
    with pytest.raises(TrackingError, match="refused the metrics of step 0"):
        trial.log_epoch(0, {"bad key!": 1.0})
    assert trial.pending_epochs == 0
    trial.log_epoch(1, {"loss": 0.5})
    assert trial.pending_epochs == 0
    trial.finish("finished", "NC")
    assert metric_history(study.tracking_uri, trial.run_id, "loss") == [(1, 0.5)]


def test_a_deleted_experiment_is_not_reused(tmp_path: Path) -> None:
    study = sqlite_study(tmp_path, "gone")
    study.finish()
    MlflowClient(study.tracking_uri).delete_experiment(study.experiment_id)
    with pytest.raises(UserError, match="'gone' was deleted.*restore"):
        sqlite_study(tmp_path, "gone")


def test_only_runs_with_the_study_and_trial_roles_are_the_studys(tmp_path: Path) -> None:
    """A run tagged with the study's name but not `hcl.role=study` (made first, so the oldest)
    is not its parent; a trial run under another parent is not one of its trials."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(
        "roles", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    stray = client.create_run(experiment_id, tags={"hcl.study": "roles"}).info.run_id
    study = sqlite_study(tmp_path, "roles")
    assert not study.resumed
    assert study.run_id != stray
    assert run_of(study, study.run_id).data.tags["hcl.role"] == "study"
    trial = open_trial(study, "t0")
    elsewhere = {"mlflow.parentRunId": stray, "hcl.role": "trial", "hcl.trial_id": "t1"}
    client.create_run(experiment_id, tags=elsewhere)
    record = load_study(uri, "roles")
    assert record.run_id == study.run_id
    assert [(t.trial_id, t.run_id) for t in record.trials] == [("t0", trial.run_id)]


def test_a_resumed_study_drops_version_tags_of_the_earlier_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version tags describe the latest start: resumed from a copy outside git, the study
    no longer names the commit of its first start."""
    monkeypatch.setattr("hcl_study.tracking._git_commit", lambda: "deadbeef")
    study = sqlite_study(tmp_path)
    assert run_of(study, study.run_id).data.tags["hcl.git_commit"] == "deadbeef"
    study.finish("KILLED")
    monkeypatch.setattr("hcl_study.tracking._git_commit", lambda: None)
    resumed = sqlite_study(tmp_path)
    assert resumed.resumed
    tags = run_of(resumed, resumed.run_id).data.tags
    assert "hcl.git_commit" not in tags
    assert tags["hcl.role"] == "study" and tags["hcl.version"]


def test_metrics_survive_a_server_outage_between_epochs(
    mlflow_server_factory: Callable[..., MlflowServer],
) -> None:
    server = mlflow_server_factory()
    name = unique_name("outage")
    study = StudyRun.start_or_resume(server.uri, name, {"name": name})
    trial = open_trial(study, "t_outage")
    trial.log_epoch(0, {"loss": 1.0, "nc1": 0.1})
    server.stop()
    trial.log_epoch(1, {"loss": 0.5, "nc1": 0.2})
    trial.log_epoch(2, {"loss": 0.25, "nc1": 0.3})
    assert trial.pending_epochs == 2
    server.start()  # same port, same store
    trial.log_epoch(3, {"loss": 0.125, "nc1": 0.4})
    assert trial.pending_epochs == 0
    trial.finish("finished", "NC")
    for key in ("loss", "nc1"):
        assert steps(server.uri, trial.run_id, key) == [0, 1, 2, 3]
    assert [value for _, value in metric_history(server.uri, trial.run_id, "loss")] == [
        1.0,
        0.5,
        0.25,
        0.125,
    ]

    late = open_trial(study, "t_late", flush_timeout_s=1.0)
    late.log_epoch(0, {"loss": 1.0})
    server.stop()
    late.log_epoch(1, {"loss": 0.5})
    with pytest.raises(TrackingError, match=r"steps 1\.\.1"):
        late.finish("finished", "DC")
    server.start()
    late.finish("finished", "DC")
    assert steps(server.uri, late.run_id, "loss") == [0, 1]
    assert MlflowClient(server.uri).get_run(late.run_id).data.tags["hcl.regime"] == "DC"


def test_sqlite_store_round_trip(tmp_path: Path) -> None:
    uri = default_tracking_uri(tmp_path / "study")
    assert uri == f"sqlite:///{tmp_path.resolve()}/study/mlflow.db"
    assert uri.startswith("sqlite:////")
    check_tracking_uri(uri)
    assert not (tmp_path / "study").exists(), "checking a URI creates nothing"
    artifacts = (tmp_path / "study" / "artifacts").as_uri()
    study = StudyRun.start_or_resume(uri, "sqlite-study", {"a": 1}, artifact_location=artifacts)
    assert (tmp_path / "study" / "mlflow.db").is_file()
    trial = open_trial(study, "t0")
    trial.log_epoch(0, {"loss": 2.0})
    trial.log_epoch(1, {"loss": float("inf")})
    trial.log_final_artifacts(np.zeros((2, 3, 2)), np.array([[1.0, 0.5], [np.nan, np.nan]]))
    trial.finish("diverged", "diverged")
    record = load_study(uri, "sqlite-study")
    assert [(t.trial_id, t.status, t.mlflow_status) for t in record.trials] == [
        ("t0", "diverged", "FINISHED")
    ]
    assert steps(uri, trial.run_id, "loss") == [0, 1]
    assert (tmp_path / "study" / "artifacts").is_dir()
    png = download_artifact(uri, trial.run_id, "spectrum.png", tmp_path / "dl")
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(UserError, match="No study named 'missing'"):
        load_study(uri, "missing")


def test_check_tracking_uri_accepts_a_running_server(mlflow_server: MlflowServer) -> None:
    check_tracking_uri(mlflow_server.uri)


@pytest.mark.parametrize(
    ("uri_template", "named"),
    [
        ("http://127.0.0.1:{port}", "no MLflow server answers"),
        ("postgresql+psycopg2://hcl:s3cret@127.0.0.1:{port}/db", "PostgreSQL does not accept"),
        ("ftp://127.0.0.1:{port}/runs", "scheme 'ftp' is not supported"),
        ("/tmp/mlruns-{port}", "file store, which MLflow 3 keeps in maintenance mode"),
        ("file:///tmp/mlruns-{port}", "use an SQLite file in it instead: sqlite:////tmp/mlruns-"),
    ],
)
def test_check_tracking_uri_refuses_unusable_uris(uri_template: str, named: str) -> None:
    uri = uri_template.format(port=free_port())
    with pytest.raises(UserError) as refused:
        check_tracking_uri(uri, timeout_s=2)
    message = str(refused.value)
    assert "tracking_uri" in message
    assert named in message
    assert "sqlite:////" in message
    assert uri.replace("s3cret", "***") in message
    assert "s3cret" not in message


def test_a_lost_create_reply_makes_no_second_run(mlflow_server: MlflowServer) -> None:
    """The server makes the run but its reply is lost: the retry finds it, creates none."""
    name = unique_name("lost-reply")
    create = b"POST /api/2.0/mlflow/runs/create "
    with ReplyDroppingProxy(mlflow_server.port, create, drops=2) as proxy:
        study = StudyRun.start_or_resume(proxy.uri, name, {"a": 1}, call_timeout_s=60)
        trial = open_trial(study, "t0", flush_timeout_s=60)
        trial.log_epoch(0, {"loss": 1.5})
        trial.finish("finished", "DC")
        assert proxy.dropped == 2, "both creates must have lost their reply"
    runs = MlflowClient(mlflow_server.uri).search_runs([study.experiment_id])
    assert sorted(run.info.run_id for run in runs) == sorted([study.run_id, trial.run_id])
    assert steps(mlflow_server.uri, trial.run_id, "loss") == [0]


def test_check_tracking_uri_refuses_an_sqlite_file_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    uri = f"sqlite:///{tmp_path / 'plain-file' / 'sub' / 'mlflow.db'}"
    with pytest.raises(UserError, match=r"plain-file is not a writable folder"):
        check_tracking_uri(uri)
    check_tracking_uri(f"sqlite:///{tmp_path / 'not' / 'yet' / 'mlflow.db'}")
    assert not (tmp_path / "not").exists()


def test_basic_auth_server_accepts_credentials_and_refuses_anonymous_clients(
    mlflow_server_factory: Callable[..., MlflowServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip(
        "flask_wtf", reason="`--app-name basic-auth` needs Flask-WTF (the mlflow[auth] extra)"
    )
    server = mlflow_server_factory(auth=True)
    with pytest.raises(UserError, match=r"refused this machine's credentials \(HTTP 401\)"):
        check_tracking_uri(server.uri)  # before any Ray or MLflow work: exit 2, not a 401 later
    in_uri = server.uri.replace("://", f"://{ADMIN_USERNAME}:{server.admin_password}@")
    check_tracking_uri(in_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN_USERNAME)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.admin_password)
    check_tracking_uri(server.uri)
    study = StudyRun.start_or_resume(server.uri, "auth-study", {"name": "auth-study"})
    trial = open_trial(study, "t_auth")
    trial.log_epoch(0, {"loss": 1.0})
    trial.finish("finished", "NC")
    assert steps(server.uri, trial.run_id, "loss") == [0]

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    with pytest.raises(UserError, match="MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"):
        check_tracking_uri(server.uri)
    with pytest.raises(TrackingError, match="401"):
        StudyRun.start_or_resume(server.uri, "auth-study", {"name": "auth-study"})
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(TrackingError, match="401"):
        StudyRun.start_or_resume(server.uri, "anonymous-study", {"name": "anonymous-study"})


class StubServer:
    """An HTTP server on 127.0.0.1 that answers /health and the MLflow API with set
    statuses and keeps each request's Authorization header (not an MLflow server: the
    answers that check_tracking_uri must tell apart)."""

    def __init__(self, health: int = 200, api: int = 200, token: str | None = None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.authorizations: list[str | None] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                stub.authorizations.append(self.headers.get("Authorization"))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.path == "/health":
                    status = health
                elif token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                    status = 401
                else:
                    status = api
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from hcl_study.tracking import CREDENTIAL_VARIABLES

    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("health", "api", "named"),
    [
        (503, 200, "the server answered /health with HTTP 503"),
        (200, 403, "refused this machine's credentials (HTTP 403); set MLFLOW_TRACKING_USERNAME"),
        (200, 401, "refused this machine's credentials (HTTP 401)"),
        (200, 404, "it answered the MLflow API with HTTP 404 (is it an MLflow tracking server?)"),
    ],
)
def test_check_tracking_uri_tells_what_the_server_answered(
    without_credentials: None, health: int, api: int, named: str
) -> None:
    server = StubServer(health=health, api=api)
    try:
        with pytest.raises(UserError) as refused:
            check_tracking_uri(server.uri)
        assert named in str(refused.value)
    finally:
        server.close()


def test_check_tracking_uri_sends_the_token_and_prefers_credentials_in_the_uri(
    without_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    server = StubServer(token="s3cret")
    try:
        with pytest.raises(UserError, match=r"HTTP 401"):
            check_tracking_uri(server.uri)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "s3cret")
        check_tracking_uri(server.uri)
        assert server.authorizations[-1] == "Bearer s3cret"
    finally:
        server.close()

    server = StubServer()
    try:
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "env-user")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "env-password")
        check_tracking_uri(server.uri)
        assert (
            server.authorizations[-1]
            == "Basic " + base64.b64encode(b"env-user:env-password").decode()
        )
        check_tracking_uri(server.uri.replace("http://", "http://uri-user:uri-password@"))
        assert (
            server.authorizations[-1]
            == "Basic " + base64.b64encode(b"uri-user:uri-password").decode()
        )
    finally:
        server.close()


@pytest.mark.parametrize(
    ("variables", "verify", "cert"),
    [
        ({}, True, None),
        ({"MLFLOW_TRACKING_INSECURE_TLS": "true"}, False, None),
        ({"MLFLOW_TRACKING_SERVER_CERT_PATH": "/certs/ca.pem"}, "/certs/ca.pem", None),
        ({"MLFLOW_TRACKING_CLIENT_CERT_PATH": "/certs/me.pem"}, True, "/certs/me.pem"),
    ],
)
def test_check_tracking_uri_uses_the_tls_settings(
    without_credentials: None,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    verify: bool | str,
    cert: str | None,
) -> None:
    """There is no TLS server here: the settings are read off the requests it makes."""
    import requests

    seen: list[dict[str, object]] = []

    class Answer:
        status_code = 200

    def request(method: str, url: str, **kwargs: object) -> Answer:
        seen.append(kwargs)
        return Answer()

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(requests, "request", request)
    check_tracking_uri("https://mlflow.internal:5000")
    assert [(kwargs["verify"], kwargs["cert"]) for kwargs in seen] == [(verify, cert)] * 2


def test_trials_get_every_credential_variable_set_here(
    without_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hcl_study.tracking import CREDENTIAL_VARIABLES, tracking_environment

    assert tracking_environment() == {}
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.setenv(name, f"value of {name}")
    assert tracking_environment() == {name: f"value of {name}" for name in CREDENTIAL_VARIABLES}
    # Those with which MLflow's client authenticates to a server (its get_default_host_creds).
    from mlflow import environment_variables as mlflow_variables

    read_by_mlflow = [
        getattr(mlflow_variables, f"MLFLOW_TRACKING_{name}").name
        for name in ("USERNAME", "PASSWORD", "TOKEN", "INSECURE_TLS")
    ] + [
        getattr(mlflow_variables, f"MLFLOW_TRACKING_{name}_CERT_PATH").name
        for name in ("SERVER", "CLIENT")
    ]
    assert set(read_by_mlflow) <= set(CREDENTIAL_VARIABLES)


def test_a_retried_trial_drops_the_error_of_its_failed_attempt(tmp_path: Path) -> None:
    study = sqlite_study(tmp_path)
    trial = open_trial(study, "t0")
    assert study.close_trial("t0", "failed", error="RuntimeError: boom")
    assert run_of(study, trial.run_id).data.tags["hcl.error"] == "RuntimeError: boom"
    retry = open_trial(study, "t0")
    assert retry.run_id == trial.run_id
    tags = run_of(study, retry.run_id).data.tags
    assert "hcl.error" not in tags
    assert tags["hcl.status"] == "running"


def test_regime_counts_of_regimes_no_trial_has_any_more_are_deleted(tmp_path: Path) -> None:
    study = sqlite_study(tmp_path)
    study.set_tags({"note": "kept"})
    study.set_regime_counts({"failed": 1, "NC": 2})
    study.set_regime_counts({"NC": 3})
    tags = run_of(study, study.run_id).data.tags
    counts = {key: value for key, value in tags.items() if key.startswith("hcl.regime_count.")}
    assert counts == {"hcl.regime_count.NC": "3"}
    assert tags["note"] == "kept"


def test_of_two_parent_runs_of_one_study_the_oldest_is_resumed_and_read(tmp_path: Path) -> None:
    """Two drivers racing could make two; resume and analysis must agree on one."""
    study = sqlite_study(tmp_path, "twin")
    study.finish("KILLED")
    client = MlflowClient(study.tracking_uri)
    oldest = run_of(study, study.run_id)
    tags = {"hcl.role": "study", "hcl.study": "twin"}
    client.create_run(study.experiment_id, start_time=oldest.info.start_time + 60_000, tags=tags)
    resumed = sqlite_study(tmp_path, "twin")
    assert (resumed.run_id, resumed.resumed) == (study.run_id, True)
    trial = open_trial(resumed, "t0")
    record = load_study(study.tracking_uri, "twin")
    assert record.run_id == study.run_id
    assert [t.run_id for t in record.trials] == [trial.run_id]


def test_a_study_with_more_trials_than_a_search_page_reads_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of 2 runs stand in for MLflow's 1,000, which a test cannot afford to fill."""
    monkeypatch.setattr("hcl_study.tracking.SEARCH_PAGE_SIZE", 2)
    study = sqlite_study(tmp_path)
    opened = [open_trial(study, f"t{index}").run_id for index in range(5)]
    record = load_study(study.tracking_uri, study.study_name)
    assert [t.trial_id for t in record.trials] == [f"t{index}" for index in range(5)]
    assert [t.run_id for t in record.trials] == opened, "oldest first"
    assert study.close_dangling_trials() == 5


def test_a_resumed_study_is_tagged_with_the_versions_of_its_latest_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hcl_study.tracking._git_commit", lambda: "deadbeef")
    study = sqlite_study(tmp_path)
    study.finish("KILLED")
    monkeypatch.setattr("hcl_study.tracking._git_commit", lambda: "cafef00d")
    resumed = sqlite_study(tmp_path)
    assert resumed.resumed
    assert run_of(resumed, resumed.run_id).data.tags["hcl.git_commit"] == "cafef00d"


def test_the_spec_file_is_logged_as_written_comments_and_all(tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text("# why this study exists\nname: commented   # inline\n", "utf-8")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = (tmp_path / "artifacts").as_uri()
    from_file = StudyRun.start_or_resume(
        uri, "commented", {"name": "commented"}, spec_path, artifact_location=artifacts
    )
    dumped = StudyRun.start_or_resume(
        uri, "dumped", {"name": "dumped", "epochs": 3}, artifact_location=artifacts
    )
    logged = download_artifact(uri, from_file.run_id, "spec.yaml", tmp_path / "file")
    assert logged.read_text("utf-8") == spec_path.read_text("utf-8")
    logged = download_artifact(uri, dumped.run_id, "spec.yaml", tmp_path / "dump")
    assert logged.read_text("utf-8") == "name: dumped\nepochs: 3\n"


def test_more_params_than_one_request_takes_are_all_logged(mlflow_server: MlflowServer) -> None:
    """MLflow's REST API takes 100 params per request; a study's flattened spec may hold more."""
    name = unique_name("many-params")
    spec = {"name": name, "space": {f"axis_{index:03d}": index for index in range(250)}}
    study = StudyRun.start_or_resume(mlflow_server.uri, name, spec)
    params = MlflowClient(mlflow_server.uri).get_run(study.run_id).data.params
    assert len(params) == 251
    assert params["space.axis_249"] == "249"
