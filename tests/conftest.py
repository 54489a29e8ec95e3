"""Shared test set-up: quiet, local-only Ray and MLflow; slow tests behind --run-slow."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
os.environ.pop("MLFLOW_TRACKING_URI", None)  # the CLI's default store; tests name theirs

sys.path.insert(0, str(Path(__file__).parent / "support"))
from mlflow_server import mlflow_server, mlflow_server_factory  # noqa: F401,E402
from postgres_server import postgres_server  # noqa: F401,E402
from smoke_study import smoke_study  # noqa: F401,E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
