"""Team scale: concurrent trials against an MLflow server on a real PostgreSQL backend.

The `postgres_server` fixture (tests/support/postgres_server.py) starts a private PostgreSQL
cluster as the `postgres` user; it skips, saying why, when the server binaries are missing
(.ci/run installs them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from reliability_support import smoke_spec, write_spec
from study_checks import LOGGED_METRICS, metric_steps, study_runs

from hcl_study.study.runner import run_study

pytestmark = pytest.mark.postgres

TRIALS, EPOCHS = 4, 6
# What a store under concurrent writers must never say (server log, Ray worker logs).
STORE_ERRORS = re.compile(
    r"database is locked|OperationalError|IntegrityError|deadlock detected|too many clients"
    r"|could not connect|connection refused|server closed the connection|Traceback"
    r"|MLflow call failed|MLflow unreachable|could not close the MLflow run",
    re.IGNORECASE,
)


def concurrent_spec(name: str) -> dict[str, Any]:
    """Four trials at once on two CPUs (0.5 CPU each), every epoch logged and checkpointed."""
    return smoke_spec(
        name,
        base={"epochs": EPOCHS, "data": {"name": "latent_class", "num_classes": 10, "input_dim": 16,
                                         "num_train": 6000, "num_test": 200}, "batch_size": 64},
        search={"algorithm": "random", "num_samples": TRIALS, "max_concurrent": TRIALS, "seed": 0},
        resources={"cpu": 0.5, "gpu": 0},
        checkpoint_every=1,
        max_failures=0,  # an error must surface, not be retried away
    )  # fmt: skip


def max_overlap(runs: list[Any]) -> int:
    """The most trial runs that were open at the same moment (MLflow start/end times)."""
    events = sorted(
        [(run.info.start_time, 1) for run in runs] + [(run.info.end_time, -1) for run in runs],
        key=lambda event: (event[0], event[1]),
    )
    open_runs = peak = 0
    for _, change in events:
        open_runs += change
        peak = max(peak, open_runs)
    return peak


def store_problems(*paths: Path) -> list[str]:
    lines = []
    for path in paths:
        text = path.read_text(errors="replace") if path.is_file() else ""
        lines += [f"{path.name}: {line}" for line in text.splitlines() if STORE_ERRORS.search(line)]
    return lines


def describe(tracking_uri: str, study: str) -> dict[str, Any]:
    """Run counts and logged steps of a study, comparable across stores."""
    parent, children = study_runs(tracking_uri, study)
    steps = [metric_steps(tracking_uri, run) for run in children]
    return {
        "parent": parent.info.status,
        "trials": len(children),
        "statuses": sorted((run.info.status, run.data.tags["hcl.status"]) for run in children),
        "steps": [sorted(per_run.items()) for per_run in steps],
    }


def test_concurrent_trials_on_postgres_match_sqlite(
    postgres_server: Any,
    mlflow_server_factory: Any,
    ray_tmpdir: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = mlflow_server_factory(backend_store_uri=postgres_server.uri("mlflow"))
    spec = concurrent_spec("team")
    (tmp_path / "pg").mkdir()
    monkeypatch.chdir(tmp_path / "pg")
    on_postgres = run_study(write_spec(tmp_path, spec), tracking_uri=server.uri)

    assert on_postgres.num_trials == TRIALS and "failed" not in on_postgres.regimes
    parent, children = study_runs(server.uri, "team")
    assert max_overlap(children) == TRIALS, "the four trials ran at the same time"
    worker_logs = list(Path(ray_tmpdir).glob("ray/session_*/logs/worker-*"))
    assert worker_logs, f"no Ray worker logs under {ray_tmpdir}"
    problems = store_problems(server.log_path, postgres_server.log_path, *worker_logs)
    assert not problems, "\n".join(problems[:20])
    errored = list((tmp_path / "pg").glob("studies/team/ray/team/*/error.*"))
    assert not errored, errored

    (tmp_path / "sqlite").mkdir()
    monkeypatch.chdir(tmp_path / "sqlite")
    on_sqlite = run_study(write_spec(tmp_path, spec))  # the default store: studies/team/mlflow.db
    assert on_sqlite.tracking_uri.startswith("sqlite:")

    expected_steps = [sorted((key, list(range(EPOCHS))) for key in LOGGED_METRICS)] * TRIALS
    postgres_view = describe(server.uri, "team")
    assert postgres_view["steps"] == expected_steps, "every metric at every epoch, once"
    assert postgres_view == describe(on_sqlite.tracking_uri, "team")
    assert postgres_view["statuses"] == [("FINISHED", "finished")] * TRIALS


def test_optuna_and_mlflow_keep_separate_databases(postgres_server: Any) -> None:
    """Optuna's RDB storage in database `optuna` and MLflow's store in `mlflow` on one
    PostgreSQL server: each has its own `alembic_version`, neither breaks the other."""
    import optuna
    from mlflow import MlflowClient

    tracking = MlflowClient(postgres_server.uri("mlflow"))  # MLflow's migrations run here
    experiment_id = tracking.create_experiment("separate-databases")
    study = optuna.create_study(
        study_name="separate-databases",
        storage=postgres_server.uri("optuna"),
        sampler=optuna.samplers.TPESampler(seed=0),
        direction="maximize",
    )
    study.optimize(
        lambda trial: -((trial.suggest_float("beta", 0.0, 30.0) - 10.0) ** 2), n_trials=3
    )
    run = tracking.create_run(experiment_id)
    tracking.log_metric(run.info.run_id, "best", study.best_value, step=0)
    assert (
        len(
            optuna.load_study(
                study_name="separate-databases", storage=postgres_server.uri("optuna")
            ).trials
        )
        == 3
    )
    assert tracking.get_run(run.info.run_id).data.metrics["best"] == study.best_value
    for database in ("mlflow", "optuna"):
        engine = sqlalchemy.create_engine(postgres_server.uri(database))
        try:
            with engine.connect() as connection:
                tables = set(sqlalchemy.inspect(connection).get_table_names())
        finally:
            engine.dispose()
        assert "alembic_version" in tables
        assert ("experiments" in tables) == (database == "mlflow")
        assert ("trials" in tables) == (database == "optuna")
