"""The study service end to end: real local Ray, a real MLflow server or SQLite store."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from mlflow_server import ADMIN_USERNAME
from smoke_study import SmokeStudy
from study_checks import metric_steps, study_runs, tune_iterations, tune_trial_configs

from analysis.boundary import estimate_phase_boundary
from analysis.loading import load_study_data
from analysis.order_parameters import add_order_parameters
from analysis.report import study_figures
from hcl_study.errors import UserError
from hcl_study.study.runner import run_study
from hcl_study.study.spec import parse_study_spec

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"
CLI = [str(Path(sys.executable).parent / "hcl-study")]


def write_spec(directory: Path, **changes: Any) -> Path:
    spec = yaml.safe_load(SMOKE.read_text())
    spec.update(changes)
    path = directory / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def check_complete_study(
    tracking_uri: str, study: str, experiment_dir: Path, epochs: int, trials: int
) -> None:
    parent, children = study_runs(tracking_uri, study)
    assert parent.info.status == "FINISHED"
    assert {"hcl.version", "hcl.ray_version", "hcl.torch_version", "hcl.mlflow_version"} <= set(
        parent.data.tags
    )
    client = MlflowClient(tracking_uri)
    assert "spec.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    assert len(children) == trials
    configs = tune_trial_configs(experiment_dir)
    assert set(configs) == {run.data.tags["hcl.trial_id"] for run in children}
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["hcl.status"] == "finished"
        assert run.data.tags["hcl.regime"] in {"NC", "DC", "partial"}
        for key, steps in metric_steps(tracking_uri, run).items():
            assert steps == list(range(epochs)), key
        for key, value in configs[run.data.tags["hcl.trial_id"]].items():
            assert run.data.params[key] == str(value), key
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert artifacts == {"class_means.npy", "spectrum.npy", "spectrum.png"}
        class_means = np.load(client.download_artifacts(run.info.run_id, "class_means.npy"))
        assert class_means.shape == (epochs, 10, 9)


def test_smoke_study_against_mlflow_server(mlflow_server: Any, tmp_path: Path) -> None:
    """`hcl-study study` as a user runs it, logging to a real `mlflow server` named by
    MLFLOW_TRACKING_URI (as in the compose deployment)."""
    import os

    storage = tmp_path / "ray"
    completed = subprocess.run(
        [*CLI, "study", str(SMOKE), "--storage", str(storage)],
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.uri},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    progress = [line for line in lines if re.match(r"\[\d/4\] \w+ · finished · \w+ · ", line)]
    assert [line[:5] for line in progress] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"], lines
    assert all("erank_means " in line and "loss.beta=" in line for line in progress)
    assert any(line.startswith("Best trial for erank_means") for line in lines)
    assert f"Open the UI: open {mlflow_server.uri}/#/experiments/" in completed.stdout
    printed = completed.stdout + completed.stderr
    for noise in ("Configuration for experiment", "Tuner.restore", "Token authentication"):
        assert noise not in printed, f"{noise!r} in the output"
    check_complete_study(mlflow_server.uri, "smoke", storage / "smoke", epochs=3, trials=4)
    assert not (tmp_path / "studies" / "smoke" / "mlflow.db").exists()


def test_smoke_study_with_default_sqlite_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, name="smoke-sqlite")
    summary = run_study(spec)
    study_dir = tmp_path / "studies" / "smoke-sqlite"
    assert summary.tracking_uri == f"sqlite:///{study_dir / 'mlflow.db'}"
    assert summary.num_trials == 4 and sum(summary.regimes.values()) == 4
    check_complete_study(
        summary.tracking_uri, "smoke-sqlite", study_dir / "ray" / "smoke-sqlite", epochs=3, trials=4
    )
    check_summary_matches_mlflow(summary)
    experiment = MlflowClient(summary.tracking_uri).get_experiment(summary.experiment_id)
    assert experiment.name == "smoke-sqlite"
    assert experiment.artifact_location == (study_dir / "artifacts").as_uri()
    assert not (tmp_path / "mlruns").exists(), "a SQLite store keeps its artifacts beside it"
    # Running the same spec again re-reports the finished study instead of starting over,
    # from Tune's saved results: Ray is not started.
    from hcl_study.study import runner

    def no_ray(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("Ray started to re-report a complete study")

    monkeypatch.setattr(runner, "connect_ray", no_ray)
    again = run_study(spec)
    assert again == summary
    assert len(study_runs(summary.tracking_uri, "smoke-sqlite")[1]) == 4
    # ... and it stays where it is: another store or storage path is refused, not ignored.
    with pytest.raises(UserError, match=r"--tracking-uri: the study 'smoke-sqlite' already"):
        run_study(spec, tracking_uri=f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(UserError, match=r"--storage: .* keeps using .*ray"):
        run_study(spec, storage=str(tmp_path / "elsewhere"))
    assert not (tmp_path / "other.db").exists() and not (tmp_path / "elsewhere").exists()
    # A trial run left RUNNING (e.g. by a killed driver) is closed when the study is run again.
    client = MlflowClient(summary.tracking_uri)
    trial_tags = {"hcl.role": "trial", "mlflow.parentRunId": summary.parent_run_id}
    lost = client.create_run(summary.experiment_id, tags=trial_tags | {"hcl.trial_id": "lost"})
    assert run_study(spec) == summary
    lost = client.get_run(lost.info.run_id)
    assert (lost.info.status, lost.data.tags.get("hcl.status")) == ("KILLED", "killed")


def check_summary_matches_mlflow(summary: Any) -> None:
    """The summary's best trial is the finished child run with the best final objective."""
    _, children = study_runs(summary.tracking_uri, summary.name)
    finals = {
        run.info.run_id: run.data.metrics["erank_means"]
        for run in children
        if run.data.tags["hcl.status"] == "finished"
    }
    best = summary.best
    assert best["metric"] == "erank_means" and best["mlflow_run_id"] == max(finals, key=finals.get)
    [run] = [run for run in children if run.info.run_id == best["mlflow_run_id"]]
    assert best["value"] == pytest.approx(finals[run.info.run_id])
    assert best["regime"] == run.data.tags["hcl.regime"]
    assert {key: str(value) for key, value in best["params"].items()} == {
        key: run.data.params[key] for key in best["params"]
    }


def sequential_grid(
    tmp_path: Path, name: str, betas: list[float], **changes: Any
) -> tuple[Path, str]:
    """A smoke grid over `betas`, one trial at a time, in the default SQLite store (with
    other top-level `changes`): its spec and tracking URI (run from `tmp_path`)."""
    spec = write_spec(
        tmp_path,
        name=name,
        space={"loss.beta": {"grid": betas}},
        search={"algorithm": "grid", "max_concurrent": 1, "seed": 0},
        **changes,
    )
    return spec, f"sqlite:///{tmp_path / 'studies' / name / 'mlflow.db'}"


def test_study_whose_ending_fails_is_closed_failed_and_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after Tune's fit (here in the summary) ends the parent run FAILED, not
    RUNNING; running the spec again (with the same --set) reopens that run and finishes
    the study in it."""
    from hcl_study.study import runner

    monkeypatch.chdir(tmp_path)
    spec, tracking_uri = sequential_grid(tmp_path, "ending-fails", [1.0])
    summarize = runner.summarize

    def failing_summary(*args: Any) -> Any:
        raise RuntimeError("the summary failed")

    monkeypatch.setattr(runner, "summarize", failing_summary)
    with pytest.raises(RuntimeError, match="the summary failed"):
        run_study(spec, assignments=["base.epochs=2"])
    parent, children = study_runs(tracking_uri, "ending-fails")
    assert parent.info.status == "FAILED"
    assert [run.info.status for run in children] == ["FINISHED"]

    monkeypatch.setattr(runner, "summarize", summarize)
    summary = run_study(spec, assignments=["base.epochs=2"])
    assert summary.parent_run_id == parent.info.run_id and summary.num_trials == 1
    parent, children = study_runs(tracking_uri, "ending-fails")
    assert parent.info.status == "FINISHED" and len(children) == 1


def signal_after(monkeypatch: pytest.MonkeyPatch, hook: str) -> Callable[..., None]:
    """Make the callback `TrialRunCloser.<hook>` send this process SIGUSR1 once it has run
    (Tune's handler: stop after this step). Returns the original hook."""
    import os
    import signal

    from hcl_study.study.callbacks import TrialRunCloser

    original = getattr(TrialRunCloser, hook)

    def then_signal(self: TrialRunCloser, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGUSR1)

    monkeypatch.setattr(TrialRunCloser, hook, then_signal)
    return original


def test_signal_between_trials_interrupts_the_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal that lands after one trial ended and before the next one started leaves no
    trial unfinished, yet the study is not complete: it is interrupted (parent KILLED), and
    running the spec again runs the remaining trial."""
    from hcl_study.errors import StudyInterrupted
    from hcl_study.study.callbacks import TrialRunCloser

    monkeypatch.chdir(tmp_path)
    spec, tracking_uri = sequential_grid(tmp_path, "between-trials", [1.0, 2.0])
    on_trial_complete = signal_after(monkeypatch, "on_trial_complete")
    with pytest.raises(StudyInterrupted, match=r"1 of its 2 trials had ended"):
        run_study(spec)
    parent, children = study_runs(tracking_uri, "between-trials")
    assert parent.info.status == "KILLED"
    assert [run.info.status for run in children] == ["FINISHED"]

    monkeypatch.setattr(TrialRunCloser, "on_trial_complete", on_trial_complete)
    summary = run_study(spec)
    assert summary.parent_run_id == parent.info.run_id and summary.num_trials == 2
    parent, children = study_runs(tracking_uri, "between-trials")
    assert parent.info.status == "FINISHED"
    assert sorted(run.data.params["loss.beta"] for run in children) == ["1.0", "2.0"]


def test_a_failed_trial_of_an_interrupted_study_stays_failed_when_it_is_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal after a trial failed (no retries left) and before the next one started:
    running the spec again runs the remaining trial only; the failed one stays failed, as
    in a study that was never interrupted (only `resume --retry-failed` runs it again), and
    running it once more re-reports the study without starting Ray."""
    from hcl_study.errors import StudyInterrupted
    from hcl_study.faults import FAULT_DIR_VARIABLE, FAULT_LIMIT_VARIABLE, FAULT_VARIABLE
    from hcl_study.study.callbacks import TrialRunCloser

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(FAULT_VARIABLE, "raise@1")  # once: a rerun of that trial would succeed
    monkeypatch.setenv(FAULT_LIMIT_VARIABLE, "1")
    monkeypatch.setenv(FAULT_DIR_VARIABLE, str(tmp_path / "faults"))
    spec, tracking_uri = sequential_grid(tmp_path, "failed-then-signal", [1.0, 2.0], max_failures=0)
    on_trial_error = signal_after(monkeypatch, "on_trial_error")
    with pytest.raises(StudyInterrupted, match=r"1 of its 2 trials had ended"):
        run_study(spec)
    monkeypatch.setattr(TrialRunCloser, "on_trial_error", on_trial_error)
    summary = run_study(spec)
    assert summary.num_trials == 2 and summary.regimes.get("failed") == 1, summary.regimes
    parent, children = study_runs(tracking_uri, "failed-then-signal")
    assert parent.info.status == "FINISHED"
    statuses = {run.data.params["loss.beta"]: run.info.status for run in children}
    assert statuses == {"1.0": "FAILED", "2.0": "FINISHED"}
    # Complete with a failed trial, it is re-reported from Tune's saved results: no Ray.
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "no-ray"))
    assert run_study(spec) == summary
    assert not (tmp_path / "no-ray").exists(), "Ray started to re-report a complete study"


def test_ctrl_c_before_tune_started_closes_the_parent_and_resume_runs_the_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the parent run is created but before Tune saved anything: the parent
    ends KILLED with the resume hint, the study stays where it is (another tracking URI is
    refused), and `resume` runs its trials in that parent run."""
    from ray import tune

    from hcl_study.errors import StudyInterrupted
    from hcl_study.study.runner import resume_study

    monkeypatch.chdir(tmp_path)
    spec, tracking_uri = sequential_grid(tmp_path, "early-ctrl-c", [1.0])
    with_parameters = tune.with_parameters

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(tune, "with_parameters", interrupted)
    with pytest.raises(StudyInterrupted, match=r"before Tune saved any trial.*resume early-ctrl-c"):
        run_study(spec)
    parent, children = study_runs(tracking_uri, "early-ctrl-c")
    assert parent.info.status == "KILLED" and not children

    monkeypatch.setattr(tune, "with_parameters", with_parameters)
    with pytest.raises(UserError, match=r"--tracking-uri: the study 'early-ctrl-c' already"):
        run_study(spec, tracking_uri=f"sqlite:///{tmp_path / 'other.db'}")
    assert not (tmp_path / "other.db").exists()
    summary = resume_study("early-ctrl-c")
    assert summary.parent_run_id == parent.info.run_id and summary.num_trials == 1
    parent, children = study_runs(tracking_uri, "early-ctrl-c")
    assert parent.info.status == "FINISHED"
    assert [run.info.status for run in children] == ["FINISHED"]


def test_signal_before_the_first_trial_leaves_a_study_that_resume_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal before Tune's first step: Tune saves an experiment without trials, which it
    cannot restore (its searcher state is lost). Running the spec again starts the trials
    afresh in the same parent run."""
    import os
    import signal

    from hcl_study.errors import StudyInterrupted
    from hcl_study.study.callbacks import TrialRunCloser

    monkeypatch.chdir(tmp_path)
    spec, tracking_uri = sequential_grid(tmp_path, "no-trial-yet", [1.0, 2.0])

    signalled = []

    def signal_at_first_setup(self: TrialRunCloser, **info: Any) -> None:
        if not signalled:  # Tune's handler is set by now: it stops before its first step
            signalled.append(True)
            os.kill(os.getpid(), signal.SIGUSR1)

    monkeypatch.setattr(TrialRunCloser, "setup", signal_at_first_setup, raising=False)
    with pytest.raises(StudyInterrupted, match=r"0 of its 2 trials had ended"):
        run_study(spec)
    saved_states = list((tmp_path / "studies" / "no-trial-yet" / "ray").rglob("experiment_state*"))
    assert saved_states, "Tune saved its (empty) experiment state"

    summary = run_study(spec)
    assert summary.num_trials == 2
    parent, children = study_runs(tracking_uri, "no-trial-yet")
    assert parent.info.status == "FINISHED" and summary.parent_run_id == parent.info.run_id
    assert sorted(run.data.params["loss.beta"] for run in children) == ["1.0", "2.0"]


def test_asha_study_closes_early_stopped_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hcl_study.study import runner

    monkeypatch.chdir(tmp_path)
    base = yaml.safe_load(SMOKE.read_text())["base"] | {"epochs": 6}
    spec = write_spec(
        tmp_path,
        name="asha",
        base=base,
        space={"optimizer.lr": {"loguniform": [1e-5, 1e-2]}, "loss.beta": {"uniform": [0.0, 30.0]}},
        search={"algorithm": "random", "num_samples": 8, "max_concurrent": 2, "seed": 1},
        scheduler={
            "name": "asha",
            "metric": "erank_means",
            "mode": "max",
            "grace_period": 1,
            "reduction_factor": 2,
        },
    )
    summary = run_study(spec)
    iterations = tune_iterations(tmp_path / "studies" / "asha" / "ray" / "asha")
    assert min(iterations.values()) < 6, "ASHA stopped no trial early; the test proves nothing"
    _, children = study_runs(summary.tracking_uri, "asha")
    assert len(children) == 8
    stopped = sum(reached < 6 for reached in iterations.values())
    assert summary.regimes.get("stopped") == stopped and "failed" not in summary.regimes
    location = runner.StudyLocation.load(tmp_path / "studies" / "asha")
    assert runner._ended_trials(location) == (8, 8)
    assert runner._failed_trials(location) == 0, "a stopped trial is no failed one to retry"
    for run in children:
        reached = iterations[run.data.tags["hcl.trial_id"]]
        assert run.info.status == "FINISHED", "no run may be left RUNNING"
        assert run.data.tags["hcl.status"] == ("finished" if reached == 6 else "stopped")
        assert ("hcl.regime" in run.data.tags) == (reached == 6), "only a final regime"
        assert metric_steps(summary.tracking_uri, run)["loss"] == list(range(reached))


@pytest.mark.slow
def test_multi_node_cluster_on_loopback(
    mlflow_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head and two worker nodes: trials land on several nodes and one MLflow server."""
    from ray.cluster_utils import Cluster

    # Ray's socket paths must stay under 108 bytes, so not below pytest's long tmp_path.
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        spec = write_spec(
            tmp_path,
            name="multinode",
            search={"algorithm": "random", "num_samples": 4, "max_concurrent": 2, "seed": 0},
        )
        monkeypatch.chdir(tmp_path)
        summary = run_study(
            spec,
            address=cluster.address,
            tracking_uri=mlflow_server.uri,
            storage=str(tmp_path / "ray"),
        )
        assert summary.num_trials == 4 and "failed" not in summary.regimes
        results = [
            yaml.safe_load(line)
            for path in (tmp_path / "ray" / "multinode").glob("*/result.json")
            for line in path.read_text().splitlines()[-1:]
        ]
        assert len({result["node_id"] for result in results}) == 2
        _, children = study_runs(mlflow_server.uri, "multinode")
        assert len(children) == 4 and all(run.info.status == "FINISHED" for run in children)
    finally:
        cluster.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def write_boundary_spec(tmp_path: Path, name: str, **search: Any) -> Path:
    """A boundary search over (β, τ) for erank_ratio = 0.8, two trials at a time."""
    return write_spec(
        tmp_path,
        name=name,
        space={
            "loss.beta": {"loguniform": [0, 30], "offset": 1},
            "loss.tau": {"uniform": [0.2, 1.0]},
        },
        search={
            "algorithm": "boundary",
            "max_concurrent": 2,
            "order_parameter": "erank_ratio",
            "threshold": 0.8,
            **search,
        },
    )


def test_boundary_search_study_logs_its_estimate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    summary = run_study(write_boundary_spec(tmp_path, "boundary", num_samples=6, initial_design=4))
    _, children = study_runs(summary.tracking_uri, "boundary")
    assert len(children) == 6
    betas = [float(run.data.params["loss.beta"]) for run in children]
    taus = [float(run.data.params["loss.tau"]) for run in children]
    assert all(0 <= b <= 30 for b in betas) and all(0.2 <= t <= 1.0 for t in taus)
    assert len(set(zip(betas, taus, strict=True))) == 6, "no duplicate proposals"
    client = MlflowClient(summary.tracking_uri)
    local = client.download_artifacts(summary.parent_run_id, "boundary_search.json", str(tmp_path))
    estimate = yaml.safe_load(Path(local).read_text())
    assert estimate["order_parameter"] == "erank_ratio" and estimate["threshold"] == 0.8
    assert sum(cell["n_completed"] + cell["n_failed"] for cell in estimate["estimates"]) == 6
    level_sets = [cell["level_set"] for cell in estimate["estimates"] if cell["level_set"]]
    assert level_sets and all(0.0 <= ls["expected_error"] <= 0.5 for ls in level_sets)
    # The analysis draws the searcher's own level set on the phase diagram, dashed.
    search_lines = sum(
        len(cell["level_set"]["contour"]) for cell in estimate["estimates"] if cell["level_set"]
    )
    figure = study_figures(*_report_inputs(summary.tracking_uri))["fig7_phase_diagram.png"]
    dashed = [line for ax in figure.axes for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == search_lines * len(figure.axes)


def test_boundary_search_study_ends_at_its_target_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = write_boundary_spec(
        tmp_path, "boundary_target", num_samples=12, initial_design=2, target_error=0.45
    )
    summary = run_study(spec)
    _, children = study_runs(summary.tracking_uri, "boundary_target")
    # at least twice the initial design; then the next suggestion ends the search, and
    # only the one trial already running (max_concurrent 2) may still finish
    assert 4 <= len(children) <= 5
    assert summary.num_trials == len(children), "the trials that ran, not num_samples"
    assert all(run.info.status == "FINISHED" for run in children)
    client = MlflowClient(summary.tracking_uri)
    local = client.download_artifacts(summary.parent_run_id, "boundary_search.json", str(tmp_path))
    [cell] = yaml.safe_load(Path(local).read_text())["estimates"]
    assert cell["level_set"]["expected_error"] <= 0.45


def _report_inputs(tracking_uri: str) -> tuple[Any, Any, Any]:
    data = load_study_data(tracking_uri, "boundary")
    trials = add_order_parameters(data.trials)
    return data, trials, estimate_phase_boundary(trials)


def test_a_trial_logs_what_a_plain_training_run_of_its_config_gives(
    smoke_study: SmokeStudy,
) -> None:
    """The same config gives the same metrics in a Ray trial (Ray sets the worker's threads
    from its CPUs) and in a plain process with other threads (this one): bit for bit."""
    import torch

    from hcl_study.study.spec import load_study_spec
    from hcl_study.train import train

    study_dir = smoke_study.root / "studies" / smoke_study.name
    spec = load_study_spec(study_dir / "spec.yaml")
    configs = tune_trial_configs(study_dir / "ray" / smoke_study.name)
    _, children = study_runs(smoke_study.tracking_uri, smoke_study.name)
    finished = [run for run in children if run.data.tags["hcl.status"] == "finished"]
    assert len(finished) == smoke_study.num_trials - 1
    client = MlflowClient(smoke_study.tracking_uri)
    threads = torch.get_num_threads()
    for run in finished[:2]:
        torch.set_num_threads(2)  # what a plain process on this machine starts with
        try:
            results = train(spec.trial_config(configs[run.data.tags["hcl.trial_id"]]))
        finally:
            torch.set_num_threads(threads)
        for key in set(results[0].metrics) - {"epoch_seconds"}:
            logged = [m.value for m in client.get_metric_history(run.info.run_id, key)]
            assert logged == [float(result.metrics[key]) for result in results], key


@pytest.mark.parametrize("mode", ["min", "max"])
def test_best_trial_is_the_same_whatever_the_order_of_the_results(mode: str) -> None:
    """Two trials tie (in the quick study, β = 30 with ball and with sphere do): the
    reported best must not depend on the order Tune lists them in, which a restore changes.
    A trial that did not run to its end has no final value, however good its last one."""
    from types import SimpleNamespace

    from hcl_study.study.runner import best_trial_result

    def result(trial_id: str, value: float, epoch: int = 4) -> SimpleNamespace:
        metrics = {"trial_id": trial_id, "etf_distance": value, "epoch": epoch, "total_epochs": 5}
        return SimpleNamespace(metrics=metrics)

    best_value = 0.1 if mode == "min" else 0.9
    results = [result("t2", best_value), result("t0", 0.5), result("t1", best_value)]
    results.append(result("t3", float("nan")))
    results.append(result("t4", 0.0 if mode == "min" else 1.0, epoch=2))  # failed or stopped
    for ordered in (results, results[::-1]):
        assert best_trial_result(ordered, "etf_distance", mode).metrics["trial_id"] == "t1"
    assert best_trial_result([result("t0", float("nan"))], "etf_distance", mode) is None


def test_trials_on_a_cluster_get_the_drivers_mlflow_credentials_and_resume_goes_there(
    mlflow_server_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nodes start without credentials (as on a real cluster); only the driver has them.
    The trials must still log to the basic-auth server, and the study must remember its
    cluster for `resume`."""
    pytest.importorskip("flask_wtf", reason="`--app-name basic-auth` needs Flask-WTF")
    from ray.cluster_utils import Cluster

    from hcl_study.study.runner import StudyLocation, _interrupted_message

    server = mlflow_server_factory(auth=True)
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # socket paths < 108 bytes
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False}
    )
    try:
        cluster.wait_for_nodes()
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN_USERNAME)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.admin_password)
        spec = write_spec(
            tmp_path,
            name="credentials",
            search={"algorithm": "random", "num_samples": 2, "max_concurrent": 2, "seed": 0},
        )
        monkeypatch.chdir(tmp_path)
        summary = run_study(spec, address=cluster.address, tracking_uri=server.uri)
        assert summary.num_trials == 2 and "failed" not in summary.regimes, summary.regimes
        _, children = study_runs(server.uri, "credentials")
        assert len(children) == 2 and all(run.info.status == "FINISHED" for run in children)
        location = StudyLocation.load(tmp_path / "studies" / "credentials")
        address = cluster.address
        assert location.address == address
    finally:
        cluster.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    spec_of_study = yaml.safe_load(spec.read_text())
    hint = _interrupted_message(parse_study_spec(spec_of_study), location)
    assert hint.endswith(f"hcl-study resume credentials --address {address}")


def test_auto_joins_the_cluster_on_this_machine_and_a_refusal_shuts_ray_down_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--address auto` finds the cluster started here (it is no HOST:PORT to probe). A
    cluster too small for one trial is refused with Ray shut down, so that a notebook's
    next study can start, and with no study folder made."""
    import ray
    from ray.cluster_utils import Cluster

    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # socket paths < 108 bytes
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False}
    )
    try:
        cluster.wait_for_nodes()
        spec = write_spec(tmp_path, name="too-big", resources={"cpu": 3, "gpu": 0})
        monkeypatch.chdir(tmp_path)
        with pytest.raises(
            UserError,
            match=r"^resources\.cpu: each trial asks for 3 CPU, but the Ray cluster has 2;",
        ):
            run_study(spec, address="auto")
        assert not ray.is_initialized(), "Ray is left running after the refusal"
        assert not (tmp_path / "studies").exists()
    finally:
        cluster.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_auto_device_trains_on_the_cpu_unless_the_trial_reserved_a_gpu() -> None:
    """Ray leaves every GPU visible to a trial that reserved none (`resources.gpu: 0`)."""
    from hcl_study.trainable import TrialContext

    context = TrialContext("s", {"device": "auto"}, "sqlite:///x.db", "1", "r", 5)
    config = context.trial_config({})
    assert context.run_config(config).device == "cpu"
    assert config.device == "auto", "the logged config stays as asked"
    with_gpu = TrialContext("s", {"device": "auto"}, "sqlite:///x.db", "1", "r", 5, 0.5)
    assert with_gpu.run_config(config).device == "auto"
    explicit = TrialContext("s", {"device": "cpu"}, "sqlite:///x.db", "1", "r", 5)
    assert explicit.run_config(explicit.trial_config({})).device == "cpu"
