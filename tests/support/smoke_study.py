"""A real smoke study for the analysis tests: 5 trials of 3 epochs, exactly one of them failed.

Fixture:
    smoke_study: session-scoped; runs `hcl-study study` once (about a minute) in a temporary
        folder against the session's `mlflow server`. Fault injection is set for that
        subprocess only: the first trial to reach epoch 1 raises there and, with
        `max_failures: 0`, ends failed after logging epoch 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hcl_study.faults import FAULT_DIR_VARIABLE, FAULT_LIMIT_VARIABLE, FAULT_VARIABLE

SMOKE_SPEC = Path(__file__).resolve().parents[2] / "search_spaces" / "smoke.yaml"
STUDY_NAME = "smoke-analysis"
NUM_TRIALS = 5
EPOCHS = 3
FAULT_EPOCH = 1
STUDY_TIMEOUT_S = 900


@dataclass(frozen=True)
class SmokeStudy:
    """Where the smoke study lives.

    Attributes:
        name: The study (experiment) name.
        root: The working folder `hcl-study study` ran in (holds `studies/NAME/study.json`).
        tracking_uri: The MLflow server the study logged to.
        sqlite_uri: That server's own SQLite store: the same runs read without the server
            (artifacts are reachable only through the server).
        num_trials: Trials in the study.
        epochs: Epochs of every trial that did not fail.
        fault_epoch: The epoch the failed trial raised before (it logged that many epochs).
    """

    name: str
    root: Path
    tracking_uri: str
    sqlite_uri: str
    num_trials: int = NUM_TRIALS
    epochs: int = EPOCHS
    fault_epoch: int = FAULT_EPOCH


def smoke_spec() -> dict[str, Any]:
    """search_spaces/smoke.yaml with 5 trials, 3 epochs and no retries of a failed trial."""
    spec = yaml.safe_load(SMOKE_SPEC.read_text())
    spec.update(name=STUDY_NAME, max_failures=0)
    spec["base"]["epochs"] = EPOCHS
    spec["search"]["num_samples"] = NUM_TRIALS
    return spec


@pytest.fixture(scope="session")
def smoke_study(mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory) -> SmokeStudy:
    """Run the smoke study once per session (see the module docstring)."""
    root = tmp_path_factory.mktemp("smoke-study")
    spec_path = root / f"{STUDY_NAME}.yaml"
    spec_path.write_text(yaml.safe_dump(smoke_spec()))
    environment = os.environ | {
        FAULT_VARIABLE: f"raise@{FAULT_EPOCH}",
        FAULT_LIMIT_VARIABLE: "1",
        FAULT_DIR_VARIABLE: str(root / "faults"),
    }
    completed = subprocess.run(
        [
            str(Path(sys.executable).with_name("hcl-study")),
            "study", str(spec_path), "--tracking-uri", mlflow_server.uri,
        ],
        cwd=root, env=environment, capture_output=True, text=True, timeout=STUDY_TIMEOUT_S,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    # The summary says how to run the failed trial again.
    assert "1 trial failed " in completed.stdout, completed.stdout[-3000:]
    assert f"hcl-study resume {STUDY_NAME} --retry-failed runs it again" in completed.stdout
    return SmokeStudy(STUDY_NAME, root, mlflow_server.uri, mlflow_server.backend_store_uri)
