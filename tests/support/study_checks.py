"""Assertions on what a study left in MLflow and in Tune's storage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run

from hcl_study.geometry import METRIC_KEYS

LOGGED_METRICS = (
    "loss",
    "loss_hard",
    "loss_plain",
    "ncm_accuracy_test",
    "regime_code",
    *METRIC_KEYS,
)


def study_runs(tracking_uri: str, study: str) -> tuple[Run, list[Run]]:
    """The parent run and the child runs of a study (asserting there is one parent)."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None, f"no MLflow experiment {study!r}"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [run for run in runs if run.data.tags.get("hcl.role") == "study"]
    assert len(parents) == 1, f"expected one parent run, got {len(parents)}"
    children = [
        run for run in runs if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id
    ]
    assert len(children) == len(runs) - 1, "every other run is a child of the parent"
    return parents[0], children


def metric_steps(tracking_uri: str, run: Run) -> dict[str, list[int]]:
    client = MlflowClient(tracking_uri)
    return {
        key: [m.step for m in client.get_metric_history(run.info.run_id, key)]
        for key in LOGGED_METRICS
    }


def tune_trial_configs(experiment_dir: Path) -> dict[str, dict[str, Any]]:
    """Trial id -> the config Tune gave the trial (from each trial folder's params.json)."""
    configs = {}
    for params in experiment_dir.glob("*/params.json"):
        configs[params.parent.name] = json.loads(params.read_text())
    return configs


def tune_iterations(experiment_dir: Path) -> dict[str, int]:
    """Trial id -> how many results the trial reported (lines of result.json)."""
    return {
        path.parent.name: len(path.read_text().splitlines())
        for path in experiment_dir.glob("*/result.json")
    }
