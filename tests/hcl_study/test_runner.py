"""Where a study runs: the Ray address it records and resumes on, and the checks that only
a local run makes. Ray and the fit are stubbed here (the real runs are in test_study.py):
these tests look at the decisions taken before Ray starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hcl_study.errors import UserError
from hcl_study.study import runner
from hcl_study.study.spec import parse_study_spec

SMOKE = Path(__file__).resolve().parents[2] / "search_spaces" / "smoke.yaml"


class Calls:
    """What the stubs were called with."""

    def __init__(self) -> None:
        self.addresses: list[str | None] = []
        self.locations: list[runner.StudyLocation] = []


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Ray's start and the fit stubbed out, in an empty working folder without RAY_ADDRESS."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    seen = Calls()

    def connect_ray(address: str | None, spec: Any, *, verbose: bool = False) -> None:
        seen.addresses.append(address)

    def fit(spec: Any, location: runner.StudyLocation, **kwargs: Any) -> None:
        location.save()
        seen.locations.append(location)

    monkeypatch.setattr(runner, "connect_ray", connect_ray)
    monkeypatch.setattr(runner, "_fit", fit)
    monkeypatch.setattr(runner, "_saved_trials", lambda location: 0)
    monkeypatch.setattr(runner, "_discard_saved_experiment", lambda location: None)
    return seen


def cifar_spec(tmp_path: Path) -> Path:
    raw = yaml.safe_load(SMOKE.read_text())
    raw["name"] = "on-the-nodes"
    raw["base"]["data"] = {"name": "cifar10", "root": str(tmp_path / "only-on-the-nodes")}
    raw["base"]["model"] = {"name": "mlp"}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("option", "variable", "recorded"),
    [(None, None, ""), ("10.0.0.5:6379", None, "10.0.0.5:6379"), (None, "auto", "auto")],
)
def test_a_study_records_the_cluster_it_runs_on(
    calls: Calls,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    variable: str | None,
    recorded: str,
) -> None:
    if variable:
        monkeypatch.setenv("RAY_ADDRESS", variable)
    runner.run_study(SMOKE, address=option)
    assert calls.addresses == [recorded or None]
    assert runner.StudyLocation.load(Path("studies/smoke")).address == recorded


@pytest.mark.parametrize(
    ("option", "variable", "expected"),
    [
        ("b:2", "c:3", "b:2"),  # --address first
        (None, "c:3", "c:3"),  # then RAY_ADDRESS
        (None, None, "a:1"),  # then the cluster the study ran on
    ],
)
def test_resume_goes_to_the_address_given_else_the_recorded_one(
    calls: Calls,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    variable: str | None,
    expected: str,
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "a:1")
    runner.run_study(SMOKE)
    if variable:
        monkeypatch.setenv("RAY_ADDRESS", variable)
    else:
        monkeypatch.delenv("RAY_ADDRESS")
    runner.resume_study("smoke", address=option)
    assert calls.addresses == ["a:1", expected]
    assert calls.locations[-1].address == expected


def test_data_only_on_the_clusters_nodes_is_not_checked_here(calls: Calls, tmp_path: Path) -> None:
    spec = cifar_spec(tmp_path)
    with pytest.raises(UserError, match="data.root"):
        runner.run_study(spec)  # local Ray: the data must be here
    assert calls.addresses == []
    runner.run_study(spec, address="10.0.0.5:6379")
    assert calls.addresses == ["10.0.0.5:6379"]


def test_a_cluster_is_checked_for_its_resources_not_this_machines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    raw = yaml.safe_load(SMOKE.read_text())
    raw["resources"] = {"cpu": 4, "gpu": 1}
    spec = parse_study_spec(raw)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 1)  # a small login node
    monkeypatch.setattr(runner, "_local_gpus", lambda: 0)
    monkeypatch.setattr(runner, "_check_address_answers", lambda address: None)
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(ray, "init", lambda **kwargs: started.append(kwargs))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 64.0, "GPU": 8.0})
    runner.connect_ray("10.0.0.5:6379", spec)
    assert [kwargs["address"] for kwargs in started] == ["10.0.0.5:6379"]
    with pytest.raises(UserError, match=r"resources.cpu: each trial asks for 4 CPU, .* has 1"):
        runner.connect_ray(None, spec)
    assert len(started) == 1, "local Ray is not started for a study it cannot run"
