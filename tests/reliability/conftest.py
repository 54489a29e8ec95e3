"""Fixtures of the reliability tests: a private Ray temp folder, cleaned up by process."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reliability_support import kill_ray_processes  # noqa: E402


@pytest.fixture
def ray_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A short RAY_TMPDIR of this test's own (Ray's socket paths must stay under 108 bytes).

    Every Ray process started under it (found by command line or environment) is killed at
    the end, so a killed driver's orphans do not outlive the test; other Ray sessions on the
    machine are left alone (never a bare `ray stop`).
    """
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", folder)
    yield folder
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    finally:
        kill_ray_processes(folder)
        shutil.rmtree(folder, ignore_errors=True)
