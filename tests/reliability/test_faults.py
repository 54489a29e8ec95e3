"""What survives what: faults injected into real studies (local Ray, a real `mlflow server`).

Faults go through the real trainable (`hcl_study.faults`, set by environment variables that
Ray's workers inherit from the driver), the driver process, a Ray node or the server.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient
from reliability_support import (
    child_runs,
    cli_env,
    final_metrics,
    kill_ray_processes,
    ray_processes,
    run_cli,
    same_values,
    smoke_spec,
    start_cli,
    tune_results,
    wait_for,
    write_spec,
)
from reply_dropping_proxy import ReplyDroppingProxy
from study_checks import LOGGED_METRICS, metric_steps, study_runs, tune_trial_configs

from hcl_study.errors import TrackingError
from hcl_study.faults import FAULT_DIR_VARIABLE, FAULT_LIMIT_VARIABLE, FAULT_VARIABLE
from hcl_study.study.runner import resume_study, run_study
from hcl_study.tracking import ERROR_TAG, REGIME_COUNT_TAG, download_artifact

# Long enough epochs (about 0.2-0.5 s on one CPU) for a fault to land mid-trial.
SLOW_DATA = {"name": "latent_class", "num_classes": 10, "input_dim": 16, "num_train": 6000}
SLOW_EPOCHS = {"data": {**SLOW_DATA, "num_test": 200}, "batch_size": 64}


def assert_every_step_once(tracking_uri: str, run: Any, epochs: int) -> None:
    for key, steps in metric_steps(tracking_uri, run).items():
        assert steps == list(range(epochs)), f"{key}: steps {steps}"


def set_fault(
    monkeypatch: pytest.MonkeyPatch, fault: str, directory: Path, limit: int | None
) -> None:
    monkeypatch.setenv(FAULT_VARIABLE, fault)
    monkeypatch.setenv(FAULT_DIR_VARIABLE, str(directory))
    if limit is not None:
        monkeypatch.setenv(FAULT_LIMIT_VARIABLE, str(limit))


def metric_histories(tracking_uri: str, run: Any) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of every logged metric of a run, in step order."""
    client = MlflowClient(tracking_uri)
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        for key in LOGGED_METRICS
    }


def test_crashed_trial_resumes_from_its_checkpoint_with_identical_results(
    mlflow_server: Any, ray_tmpdir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two trials of one config; the first to reach epoch 5 raises there once (max_failures 1).

    With a checkpoint every 3 epochs the retry restarts after epoch 2 and trains epochs 3 and
    4 again, which the first attempt had already logged: the retry continues the same MLflow
    run, skips those steps (each step once), and every logged value, of the replayed epochs
    and after, is exactly the fault-free twin's.
    """
    epochs, fault_epoch, checkpoint_every = 7, 5, 3
    monkeypatch.chdir(tmp_path)
    set_fault(monkeypatch, f"raise@{fault_epoch}", tmp_path / "faults", limit=1)
    spec = smoke_spec(
        "crash",
        base={"epochs": epochs},
        space={"loss.beta": {"grid": [5.0, 5.0]}},  # the same config twice: one faults
        search={"algorithm": "grid", "max_concurrent": 2, "seed": 0},
        checkpoint_every=checkpoint_every,
        max_failures=1,
    )
    summary = run_study(write_spec(tmp_path, spec), tracking_uri=mlflow_server.uri)

    assert summary.num_trials == 2 and "failed" not in summary.regimes, summary.regimes
    faulted = [path.name.removeprefix("fault-") for path in (tmp_path / "faults").glob("fault-*")]
    assert len(faulted) == 2 and (tmp_path / "faults" / "slot-0").exists()
    experiment_dir = tmp_path / "studies" / "crash" / "ray" / "crash"
    # Which trial raised: its error file is kept although the retry succeeded.
    errored = {path.parent.name for path in experiment_dir.glob("*/error.*")}
    assert len(errored) == 1, f"expected one crashed trial, got {errored}"
    (crashed,) = errored
    # Tune appends every report: the retry's reports of the replayed epochs follow the first's.
    replayed = list(range(checkpoint_every, fault_epoch))
    tune_reports = {
        trial_dir.parent.name: tune_results(trial_dir.parent)
        for trial_dir in experiment_dir.glob("*/params.json")
    }
    for trial_id, reports in tune_reports.items():
        expected = list(range(epochs))
        if trial_id == crashed:
            expected = [*range(fault_epoch), *replayed, *range(fault_epoch, epochs)]
        assert [report["epoch"] for report in reports] == expected, trial_id

    parent, children = study_runs(mlflow_server.uri, "crash")
    assert parent.info.status == "FINISHED"
    assert len(children) == 2, "one MLflow run per trial, also for the retried one"
    by_trial = {run.data.tags["hcl.trial_id"]: run for run in children}
    assert crashed in by_trial
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["hcl.status"] == "finished"
        assert_every_step_once(mlflow_server.uri, run, epochs)
    (clean,) = set(by_trial) - {crashed}
    crashed_history = metric_histories(mlflow_server.uri, by_trial[crashed])
    assert crashed_history == metric_histories(mlflow_server.uri, by_trial[clean])
    # The replayed epochs trained to the very values the first attempt had logged.
    first = tune_reports[crashed][checkpoint_every:fault_epoch]
    again = tune_reports[crashed][fault_epoch : fault_epoch + len(replayed)]
    for key in LOGGED_METRICS:
        logged = [value for step, value in crashed_history[key] if step in replayed]
        assert [report[key] for report in first] == [report[key] for report in again] == logged, key
    crashed_final = final_metrics(mlflow_server.uri, by_trial[crashed])
    clean_final = final_metrics(mlflow_server.uri, by_trial[clean])
    assert set(crashed_final) >= set(LOGGED_METRICS)
    assert same_values(crashed_final, clean_final), {
        key: (crashed_final[key], clean_final.get(key))
        for key in crashed_final
        if crashed_final[key] != clean_final.get(key)
    }

    def artifact(trial_id: str, name: str) -> np.ndarray:
        run_id = by_trial[trial_id].info.run_id
        return np.load(download_artifact(mlflow_server.uri, run_id, name, tmp_path / trial_id))

    # The retry carried the epochs before its checkpoint into the final artifacts.
    for name in ("class_means.npy", "spectrum.npy"):
        retried = artifact(crashed, name)
        assert len(retried) == epochs and np.array_equal(retried, artifact(clean, name)), name


def test_diverged_trial_is_recorded_and_the_optuna_study_goes_on(
    mlflow_server: Any, ray_tmpdir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lr = 1e12 without normalization turns the loss NaN at epoch 0: that trial ends
    `diverged` (FINISHED in MLflow, NaN objective told to Optuna) and the others complete."""
    monkeypatch.chdir(tmp_path)
    spec = smoke_spec(
        "diverge",
        base={"normalization": "none"},
        space={"optimizer.lr": {"choice": [0.001, 1.0e12]}, "loss.beta": {"uniform": [0.0, 10.0]}},
        search={"algorithm": "optuna", "num_samples": 4, "max_concurrent": 2, "seed": 3},
    )
    summary = run_study(write_spec(tmp_path, spec), tracking_uri=mlflow_server.uri)

    assert summary.num_trials == 4 and "failed" not in summary.regimes, summary.regimes
    configs = tune_trial_configs(tmp_path / "studies" / "diverge" / "ray" / "diverge")
    lrs = [config["optimizer.lr"] for config in configs.values()]
    assert {0.001, 1.0e12} <= set(lrs), f"the seed must sample both learning rates: {lrs}"
    assert summary.regimes.get("diverged") == lrs.count(1.0e12)
    assert summary.best is not None and summary.best["params"]["optimizer.lr"] == 0.001

    parent, children = study_runs(mlflow_server.uri, "diverge")
    assert parent.info.status == "FINISHED" and len(children) == 4
    for run in children:
        assert run.info.status == "FINISHED"
        if float(run.data.params["optimizer.lr"]) == 1.0e12:
            assert run.data.tags["hcl.status"] == "diverged"
            assert run.data.tags["hcl.regime"] == "diverged"
            steps = metric_steps(mlflow_server.uri, run)
            assert steps["loss"] == [0], "a diverged trial stops after the NaN epoch"
            history = MlflowClient(mlflow_server.uri).get_metric_history(run.info.run_id, "loss")
            assert [metric.value != metric.value for metric in history] == [True], (
                "NaN is stored as NaN"
            )
        else:
            assert run.data.tags["hcl.status"] == "finished"
            assert_every_step_once(mlflow_server.uri, run, 3)


def test_failed_trial_stays_failed_unless_the_study_is_resumed_with_retry_failed(
    ray_tmpdir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial that crashes with no retries left ends FAILED, with its traceback as
    `hcl.error`, and the study goes on. Running the spec again (or `resume`, the same
    restore) re-reports the study: the failed trial is not run a second time. `resume
    --retry-failed` runs it again from its checkpoint, in the same MLflow run, which ends
    finished with every epoch logged once."""
    monkeypatch.chdir(tmp_path)
    set_fault(monkeypatch, "raise@1", tmp_path / "faults", limit=1)
    spec = write_spec(tmp_path, smoke_spec("failed-once", max_failures=0))
    first = run_study(spec)
    assert first.regimes.get("failed") == 1 and first.num_trials == 4, first.regimes

    monkeypatch.delenv(FAULT_VARIABLE)  # a rerun of the failed trial would now succeed
    again = run_study(spec)
    assert (again.regimes, again.parent_run_id) == (first.regimes, first.parent_run_id)
    _, children = study_runs(first.tracking_uri, "failed-once")
    failed = [run for run in children if run.info.status != "FINISHED"]
    assert [(run.info.status, run.data.tags["hcl.status"]) for run in failed] == [
        ("FAILED", "failed")
    ]
    assert "hcl.regime" not in failed[0].data.tags, "a failed trial has no final regime"
    error = failed[0].data.tags[ERROR_TAG]
    assert error.rstrip().endswith(
        f"injected fault before epoch 1 of trial {failed[0].info.run_name}"
    )
    assert "InjectedFault" in error and "Failure #" not in error
    assert metric_steps(first.tracking_uri, failed[0])["loss"] == [0]

    retried = resume_study("failed-once", retry_failed=True)
    assert "failed" not in retried.regimes and sum(retried.regimes.values()) == 4
    assert retried.parent_run_id == first.parent_run_id
    parent, children = study_runs(first.tracking_uri, "failed-once")
    counts = {
        tag.removeprefix(REGIME_COUNT_TAG): int(count)
        for tag, count in parent.data.tags.items()
        if tag.startswith(REGIME_COUNT_TAG)
    }
    assert counts == retried.regimes, "no count of the failed trials is left"
    assert len(children) == 4
    [rerun] = [run for run in children if run.info.run_id == failed[0].info.run_id]
    assert (rerun.info.status, rerun.data.tags["hcl.status"]) == ("FINISHED", "finished")
    assert ERROR_TAG not in rerun.data.tags
    assert rerun.data.tags["hcl.regime"] in {"NC", "DC", "partial"}
    assert_every_step_once(first.tracking_uri, rerun, 3)


def test_crash_after_the_last_report_without_retries_keeps_the_trials_regime(
    ray_tmpdir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no retry left, a trial that raises after reporting its last epoch is an error to
    Tune, but it had logged everything and closed its run `finished`: the study counts its
    regime, as the run says, not a failure."""
    monkeypatch.chdir(tmp_path)
    set_fault(monkeypatch, "raise@3", tmp_path / "faults", limit=1)  # smoke trials: 3 epochs
    summary = run_study(write_spec(tmp_path, smoke_spec("crash-at-end", max_failures=0)))
    assert "failed" not in summary.regimes and sum(summary.regimes.values()) == 4
    parent, children = study_runs(summary.tracking_uri, "crash-at-end")
    run_regimes = Counter(run.data.tags["hcl.regime"] for run in children)
    assert {run.data.tags["hcl.status"] for run in children} == {"finished"}
    assert summary.regimes == run_regimes
    assert {
        tag.removeprefix("hcl.regime_count."): int(count)
        for tag, count in parent.data.tags.items()
        if tag.startswith("hcl.regime_count.")
    } == run_regimes
    assert (tmp_path / "faults" / "slot-0").exists(), "the fault was injected"

    # No trial failed before its end: --retry-failed has nothing to run, so no Ray.
    from hcl_study.study import runner

    def no_ray(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("Ray started to retry a trial that had ended")

    monkeypatch.setattr(runner, "connect_ray", no_ray)
    assert resume_study("crash-at-end", retry_failed=True) == summary


def test_trial_that_crashes_after_its_last_report_is_not_trained_again(
    mlflow_server: Any, ray_tmpdir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A diverged trial raises after reporting its NaN epoch (with its last checkpoint), so
    Tune retries it from that checkpoint: the retry sees that the trial had ended and does
    nothing, so no NaN epoch is trained or logged after the one it diverged at."""
    monkeypatch.chdir(tmp_path)
    set_fault(monkeypatch, "raise@1", tmp_path / "faults", limit=None)  # after epoch 0
    spec = smoke_spec(
        "ended",
        base={"normalization": "none", "epochs": 3},
        space={"optimizer.lr": {"grid": [1.0e12]}},
        search={"algorithm": "grid", "max_concurrent": 1, "seed": 0},
        max_failures=1,
    )
    summary = run_study(write_spec(tmp_path, spec), tracking_uri=mlflow_server.uri)

    assert summary.regimes == {"diverged": 1}, summary.regimes
    experiment_dir = tmp_path / "studies" / "ended" / "ray" / "ended"
    assert len(list((tmp_path / "faults").glob("fault-*"))) == 1
    assert len({path.parent for path in experiment_dir.glob("*/error.*")}) == 1, "it crashed"
    (trial_dir,) = [path.parent for path in experiment_dir.glob("*/params.json")]
    assert [report["epoch"] for report in tune_results(trial_dir)] == [0]
    _, (run,) = study_runs(mlflow_server.uri, "ended")
    assert run.info.status == "FINISHED" and run.data.tags["hcl.status"] == "diverged"
    assert metric_steps(mlflow_server.uri, run)["loss"] == [0]


class _Outage(threading.Thread):
    """Stops the server once the trial has logged `after_steps` epochs; starts it again later."""

    def __init__(self, server: Any, study: str, after_steps: int, down_s: float) -> None:
        super().__init__(daemon=True)
        self.server, self.study, self.after_steps, self.down_s = server, study, after_steps, down_s
        self.steps_at_stop: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            client = MlflowClient(self.server.uri)

            def logged_steps() -> int | None:
                runs = child_runs(self.server.uri, self.study)
                if not runs:
                    return None
                steps = len(client.get_metric_history(runs[0].info.run_id, "loss"))
                return steps if steps >= self.after_steps else None

            steps = wait_for(
                logged_steps, timeout=300, what="the trial to log epochs", interval=0.1
            )
            self.server.stop()
            self.steps_at_stop = steps
            time.sleep(self.down_s)
            self.server.start()
        except BaseException as error:  # noqa: BLE001 - re-raised by the test
            self.error = error


def test_tracking_server_outage_mid_trial_loses_no_metric(
    mlflow_server_factory: Any, ray_tmpdir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server goes down for a while mid-trial (then restarts on the same port and store):
    the trial buffers its metrics, blocks at the next checkpoint until the server is back,
    and ends with every metric at every step exactly once."""
    epochs = 15
    server = mlflow_server_factory()
    monkeypatch.chdir(tmp_path)
    spec = smoke_spec(
        "outage",
        base={**SLOW_EPOCHS, "epochs": epochs},
        space={"loss.beta": {"grid": [5.0]}},
        search={"algorithm": "grid", "max_concurrent": 1, "seed": 0},
        checkpoint_every=5,
        max_failures=1,
    )
    outage = _Outage(server, "outage", after_steps=2, down_s=5.0)
    outage.start()
    summary = run_study(write_spec(tmp_path, spec), tracking_uri=server.uri)
    outage.join(timeout=120)
    if outage.error is not None:
        raise outage.error
    assert outage.steps_at_stop is not None and outage.steps_at_stop < epochs, (
        "the outage must start mid-trial"
    )
    assert server.running
    worker_logs = Path(ray_tmpdir).glob("ray/session_*/logs/worker-*")
    warnings = "".join(path.read_text(errors="replace") for path in worker_logs)
    assert "metrics buffered" in warnings, "the trial logged while the server was down"

    assert summary.num_trials == 1 and "failed" not in summary.regimes, summary.regimes
    parent, (run,) = study_runs(server.uri, "outage")
    assert parent.info.status == "FINISHED"
    assert run.info.status == "FINISHED" and run.data.tags["hcl.status"] == "finished"
    assert_every_step_once(server.uri, run, epochs)


def test_tracking_outage_at_the_studys_end_fails_its_parent_and_resume_finishes_it(
    mlflow_server: Any, ray_tmpdir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its trial ended, but the study's closing call (its regime counts) goes unanswered past
    the driver's retries (shortened here from 120 s to 2 s): the parent run ends FAILED, not
    KILLED, the error says how to go on, and `resume` finishes the study in that run."""
    from hcl_study.tracking import StudyRun

    start = StudyRun.start_or_resume
    monkeypatch.setattr(
        StudyRun,
        "start_or_resume",
        staticmethod(lambda *args, **kwargs: start(*args, **kwargs, call_timeout_s=2.0)),
    )
    monkeypatch.chdir(tmp_path)
    spec = smoke_spec(
        "closing-outage",
        space={"loss.beta": {"grid": [5.0]}},
        search={"algorithm": "grid", "max_concurrent": 1, "seed": 0},
    )
    marker = REGIME_COUNT_TAG.encode()
    with ReplyDroppingProxy(mlflow_server.port, marker, drops=1000) as proxy:
        with pytest.raises(TrackingError) as failure:
            run_study(write_spec(tmp_path, spec), tracking_uri=proxy.uri)
        assert proxy.dropped >= 2, "the lost call is retried"
        message = str(failure.value)
        assert message.startswith("Could not set tags within 2 s (tracking server unreachable?)")
        assert "The study 'closing-outage' stopped on it" in message
        assert "hcl-study resume closing-outage continues it" in message
        parent, children = study_runs(mlflow_server.uri, "closing-outage")
        assert parent.info.status == "FAILED"
        assert [run.info.status for run in children] == ["FINISHED"]

        proxy.remaining = 0
        summary = resume_study("closing-outage")
    assert summary.parent_run_id == parent.info.run_id and summary.num_trials == 1
    parent, children = study_runs(mlflow_server.uri, "closing-outage")
    assert parent.info.status == "FINISHED" and len(children) == 1
    counts = {
        tag.removeprefix(REGIME_COUNT_TAG): int(count)
        for tag, count in parent.data.tags.items()
        if tag.startswith(REGIME_COUNT_TAG)
    }
    assert counts == summary.regimes and sum(counts.values()) == 1


def test_killed_driver_study_is_finished_by_resume(
    mlflow_server: Any, ray_tmpdir: str, tmp_path: Path
) -> None:
    """SIGKILL the `hcl-study study` process once a trial has finished, clean up that Ray
    session's orphans, then `hcl-study resume`: the seeded Optuna search continues (no
    configuration drawn twice), num_samples trials in all, no MLflow run left RUNNING."""
    num_samples, epochs = 5, 6
    spec = smoke_spec(
        "killed",
        base={**SLOW_EPOCHS, "epochs": epochs},
        search={"algorithm": "optuna", "num_samples": num_samples, "max_concurrent": 2, "seed": 7},
        checkpoint_every=1,
    )
    spec_path = write_spec(tmp_path, spec)
    # Tune snapshots its experiment state every second here (its default adapts to the
    # snapshot cost), so the running trials and their checkpoints are in the saved state.
    env = cli_env(TUNE_GLOBAL_CHECKPOINT_S="1")
    driver = start_cli(
        ["study", str(spec_path), "--tracking-uri", mlflow_server.uri],
        tmp_path,
        env,
        tmp_path / "study.log",
    )

    experiment_dir = tmp_path / "studies" / "killed" / "ray" / "killed"

    def saved_trial_ids() -> set[str]:
        """The trials in Tune's latest experiment-state snapshot (none before the first)."""
        snapshots = sorted(experiment_dir.glob("experiment_state-*.json"))
        if not snapshots:
            return set()
        trial_data = json.loads(snapshots[-1].read_text())["trial_data"]
        return {json.loads(entry[0])["trial_id"] for entry in trial_data}

    def finished_and_saved_running() -> tuple[list[Any], dict[str, Any]] | None:
        """A finished trial, and running ones past their first checkpoint that Tune's saved
        state already holds (so that a resume knows them), or None."""
        runs = child_runs(mlflow_server.uri, "killed")
        finished = [run for run in runs if run.info.status == "FINISHED"]
        saved = saved_trial_ids()
        running = {
            run.info.run_id: run
            for run in runs
            if run.info.status == "RUNNING"
            and run.data.tags["hcl.trial_id"] in saved
            and len(MlflowClient(mlflow_server.uri).get_metric_history(run.info.run_id, "loss"))
            >= 2
        }
        return (finished, running) if finished and running else None

    try:
        # Kill at once: a fast trial could finish, or a new one start unsaved, if we waited.
        finished, running_at_kill = wait_for(
            finished_and_saved_running,
            timeout=300,
            what="a finished trial and a saved running one past its first checkpoint",
        )
        assert driver.poll() is None, (tmp_path / "study.log").read_text()[-3000:]
        os.kill(driver.pid, signal.SIGKILL)  # the driver only, as an OOM killer or `kill -9` would
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert len(finished) < num_samples, "the study was already done: the kill proves nothing"
    kill_ray_processes(ray_tmpdir)  # the orphans of the killed session (they linger otherwise)
    assert not ray_processes(ray_tmpdir)
    assert running_at_kill, "a trial was running when the driver died"

    resumed = run_cli(["resume", "killed"], tmp_path, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Study killed" in resumed.stdout and "Best trial for erank_means" in resumed.stdout, (
        resumed.stdout[-3000:]
    )

    configs = tune_trial_configs(experiment_dir)
    assert len(configs) == num_samples
    drawn = [tuple(sorted(config.items())) for config in configs.values()]
    assert len(set(drawn)) == num_samples, "a reset searcher would draw its first configs again"
    parent, children = study_runs(mlflow_server.uri, "killed")
    assert parent.info.status == "FINISHED"
    assert not [run.info.run_id for run in children if run.info.status == "RUNNING"]
    by_trial: dict[str, list[Any]] = {}
    for run in children:
        by_trial.setdefault(run.data.tags["hcl.trial_id"], []).append(run)
    for trial_id in configs:
        (run,) = by_trial.pop(trial_id)  # a resumed trial continued its own run
        assert run.info.status == "FINISHED" and run.data.tags["hcl.status"] == "finished"
        assert_every_step_once(mlflow_server.uri, run, epochs)
    for runs in by_trial.values():  # trials Tune had not recorded before the kill
        assert all(run.info.status in ("KILLED", "FAILED") for run in runs)
    continued = [
        run for run in running_at_kill.values() if run.data.tags["hcl.trial_id"] in configs
    ]
    assert continued, "a trial cut off by the kill is resumed in its own MLflow run"


@pytest.mark.parametrize("tune_catches_it", [True, False], ids=["ctrl_c", "ctrl_c_past_tune"])
def test_interrupted_study_is_marked_killed_and_finished_by_resume(
    tune_catches_it: bool, mlflow_server: Any, ray_tmpdir: str, tmp_path: Path
) -> None:
    """SIGINT (Ctrl-C) to `hcl-study study` mid-study: Tune saves its state and returns, and
    the study is not reported as complete: exit code 130, a message naming `hcl-study resume`,
    the parent run KILLED without regime counts, no run left RUNNING. `hcl-study resume` then
    finishes every trial in its own MLflow run and the parent run ends FINISHED.

    A Ctrl-C that Tune does not catch (a second one while Tune stops its trials; here Tune's
    handler is off, so that the first one is) raises KeyboardInterrupt out of the fit, and
    Ray is shut down under the running trials: the driver still closes their runs."""
    num_samples, epochs = 4, 6
    name = "interrupted" if tune_catches_it else "interrupted-past-tune"  # one MLflow server
    spec = smoke_spec(
        name,
        base={**SLOW_EPOCHS, "epochs": epochs},
        search={"algorithm": "optuna", "num_samples": num_samples, "max_concurrent": 2, "seed": 5},
        checkpoint_every=1,
    )
    env = cli_env() if tune_catches_it else cli_env(TUNE_DISABLE_SIGINT_HANDLER="1")
    log = tmp_path / "study.log"
    driver = start_cli(
        ["study", str(write_spec(tmp_path, spec)), "--tracking-uri", mlflow_server.uri],
        tmp_path,
        env,
        log,
    )

    def running_past_a_checkpoint() -> dict[str, Any] | None:
        """Trial runs still RUNNING that have logged two epochs or more (by run id), or None."""
        client = MlflowClient(mlflow_server.uri)
        running = {
            run.info.run_id: run
            for run in child_runs(mlflow_server.uri, name)
            if run.info.status == "RUNNING"
            and len(client.get_metric_history(run.info.run_id, "loss")) >= 2
        }
        return running or None

    try:
        running_at_signal = wait_for(
            running_past_a_checkpoint, timeout=300, what="a trial past its first checkpoint"
        )
        assert driver.poll() is None, log.read_text()[-3000:]
        driver.send_signal(signal.SIGINT)  # what Ctrl-C sends
        driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    output = log.read_text(errors="replace")
    assert driver.returncode == 130, output[-4000:]
    assert "was interrupted" in output and f"hcl-study resume {name}" in output, output[-4000:]
    assert "Best trial for" not in output, "an interrupted study must not print a summary"

    parent, children = study_runs(mlflow_server.uri, name)
    assert parent.info.status == "KILLED"
    assert not [tag for tag in parent.data.tags if tag.startswith("hcl.regime_count.")]
    assert not [run.info.run_id for run in children if run.info.status == "RUNNING"]
    cut_off = [run for run in children if run.info.run_id in running_at_signal]
    assert cut_off and all(run.info.status == "KILLED" for run in cut_off), [
        (run.info.run_id, run.info.status) for run in cut_off
    ]
    finished = len([run for run in children if run.info.status == "FINISHED"])
    assert finished < num_samples
    if tune_catches_it:  # Tune stopped and returned: the study counts the trials that ended
        assert f"({finished} of its {num_samples} trials had ended)" in output, output[-4000:]
    else:  # KeyboardInterrupt came through the fit: nothing was counted
        assert "trials had ended" not in output, output[-4000:]

    resumed = run_cli(["resume", name], tmp_path, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Study interrupted" in resumed.stdout and "Best trial for" in resumed.stdout, (
        resumed.stdout[-3000:]
    )

    configs = tune_trial_configs(tmp_path / "studies" / name / "ray" / name)
    assert len(configs) == num_samples
    parent, children = study_runs(mlflow_server.uri, name)
    assert parent.info.status == "FINISHED"
    assert sorted(run.data.tags["hcl.trial_id"] for run in children) == sorted(configs), (
        "one MLflow run per trial: a resumed trial continues its own run"
    )
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["hcl.status"] == "finished"
        assert_every_step_once(mlflow_server.uri, run, epochs)
    assert set(running_at_signal) <= {run.info.run_id for run in children}


def test_lost_worker_node_reschedules_its_trial(
    mlflow_server: Any, ray_tmpdir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loopback cluster (head without CPUs, two 1-CPU workers) runs two trials; the node of
    one dies mid-trial (SIGKILL, no graceful shutdown). Tune retries that trial from its last
    checkpoint on the surviving node, and it completes in its own MLflow run."""
    from ray.cluster_utils import Cluster

    epochs = 10
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the driver subprocess joins without a token
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    driver = None
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        spec = smoke_spec(
            "nodelost",
            base={**SLOW_EPOCHS, "epochs": epochs},
            search={"algorithm": "random", "num_samples": 2, "max_concurrent": 2, "seed": 0},
            checkpoint_every=1,
            max_failures=2,
        )
        storage = tmp_path / "ray"
        args = ["study", str(write_spec(tmp_path, spec)), "--address", cluster.address,
                "--tracking-uri", mlflow_server.uri, "--storage", str(storage)]  # fmt: skip
        driver = start_cli(args, tmp_path, cli_env(), tmp_path / "study.log")

        def running_trial() -> tuple[str, str] | None:
            for trial_dir in (storage / "nodelost").glob("*/"):
                results = tune_results(trial_dir)
                if results and results[-1]["epoch"] < epochs // 2:  # time left to kill it
                    return trial_dir.name, results[-1]["node_id"]
            return None

        trial_id, node_id = wait_for(running_trial, timeout=300, what="a trial to report an epoch")
        (victim,) = [node for node in workers if node.node_id == node_id]
        epochs_before = len(tune_results(storage / "nodelost" / trial_id))
        cluster.remove_node(victim, allow_graceful=False)  # from the main thread only

        driver.wait(timeout=600)
        log = (tmp_path / "study.log").read_text(errors="replace")
        assert driver.returncode == 0, log[-4000:]
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        cluster.shutdown()

    results = tune_results(storage / "nodelost" / trial_id)
    assert results[-1]["epoch"] == epochs - 1
    assert results[-1]["node_id"] != node_id, "the trial finished on the surviving node"
    assert epochs_before < epochs
    parent, children = study_runs(mlflow_server.uri, "nodelost")
    assert parent.info.status == "FINISHED" and len(children) == 2
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["hcl.status"] == "finished"
        assert_every_step_once(mlflow_server.uri, run, epochs)
