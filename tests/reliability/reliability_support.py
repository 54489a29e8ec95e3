"""Helpers of the reliability tests: specs, the CLI as a subprocess, polling, Ray clean-up."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from mlflow import MlflowClient
from mlflow.entities import Run

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"
CLI = str(Path(sys.executable).with_name("hcl-study"))
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
}
# Metrics compared between a faulted and a clean trial: all but wall-clock time.
TIMING_METRICS = {"epoch_seconds"}

_T = TypeVar("_T")


def smoke_spec(name: str, **changes: Any) -> dict[str, Any]:
    """search_spaces/smoke.yaml renamed, with top-level `changes`; `base` entries merge."""
    spec = yaml.safe_load(SMOKE.read_text())
    spec["name"] = name
    base = changes.pop("base", {})
    spec["base"].update(base)
    spec.update(changes)
    return spec


def write_spec(directory: Path, spec: dict[str, Any]) -> Path:
    path = directory / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """The test process's environment (RAY_TMPDIR included), quiet, plus `extra`."""
    return {**os.environ, **QUIET_ENV, **extra}


def start_cli(
    args: list[str], cwd: Path, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """`hcl-study ARGS` in the background, output to `log`."""
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [CLI, *args], cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_for(condition: Callable[[], _T], timeout: float, what: str, interval: float = 0.25) -> _T:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - e.g. the experiment does not exist yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def child_runs(tracking_uri: str, study: str) -> list[Run]:
    """The trial runs of a study (empty while it has no experiment yet)."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [run for run in runs if run.data.tags.get("hcl.role") == "trial"]


def tune_results(trial_dir: Path) -> list[dict[str, Any]]:
    """Every result a trial reported to Tune, in order (its result.json)."""
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def final_metrics(tracking_uri: str, run: Run) -> dict[str, float]:
    """The last logged value of every metric of a run, wall-clock timing left out."""
    run = MlflowClient(tracking_uri).get_run(run.info.run_id)
    return {key: value for key, value in run.data.metrics.items() if key not in TIMING_METRICS}


def same_values(first: dict[str, float], second: dict[str, float]) -> bool:
    """Exact equality, NaN equal to NaN."""
    if first.keys() != second.keys():
        return False
    return all(
        a == b or (math.isnan(a) and math.isnan(b))
        for a, b in ((first[k], second[k]) for k in first)
    )


def _mentions(pid: int, needle: bytes) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        if needle in command:
            return True
        if not command.startswith(b"ray::"):  # e.g. an MLflow server that inherited RAY_TMPDIR
            return False
        return b"RAY_TMPDIR=" + needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone, or not ours to read
        return False


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def ray_processes(ray_tmpdir: str) -> list[int]:
    """Processes of the Ray session(s) under `ray_tmpdir`: its path is in their command line
    (gcs_server, raylet, agents), or they are workers (renamed `ray::...`) with that
    RAY_TMPDIR in their environment. The test process and its ancestors are never listed."""
    needle = ray_tmpdir.rstrip("/").encode()
    skip = _ancestors()
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and int(entry) not in skip and _mentions(int(entry), needle)
    ]


def kill_ray_processes(ray_tmpdir: str, timeout: float = 20) -> list[int]:
    """SIGKILL every process of the Ray session(s) under `ray_tmpdir`; wait until they are gone."""
    killed = ray_processes(ray_tmpdir)
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
        Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in killed
    ):
        time.sleep(0.1)
    return killed


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
