"""Where a study runs: the Ray address it records and resumes on, and the checks that only
a local run makes. Ray and the fit are stubbed here (the real runs are in test_study.py):
these tests look at the decisions taken before Ray starts, the others call the runner's
helpers on hand-made study folders and saved searcher states."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopback_server import loopback_server

from hcl_study.errors import UserError
from hcl_study.study import runner
from hcl_study.study.search import boundary_searcher
from hcl_study.study.spec import StudySpec, parse_study_spec

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


def smoke_spec(**changes: Any) -> StudySpec:
    """search_spaces/smoke.yaml with top-level `changes`."""
    return parse_study_spec(yaml.safe_load(SMOKE.read_text()) | changes)


def test_locate_takes_the_options_then_the_spec_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative storage path is taken from the working folder; a URI is kept as given."""
    root = tmp_path.resolve()
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////environment/mlflow.db")
    spec = smoke_spec(tracking_uri="sqlite:////spec/mlflow.db", storage_path="spec-ray")
    given = runner.locate(spec, tracking_uri="sqlite:////option/mlflow.db", storage="s3://b/ray/")
    assert (given.tracking_uri, given.storage_path) == (
        "sqlite:////option/mlflow.db",
        "s3://b/ray/",
    )
    assert given.experiment_path == "s3://b/ray/smoke"
    from_spec = runner.locate(spec, tracking_uri=None, storage=None)
    assert from_spec.tracking_uri == "sqlite:////spec/mlflow.db"
    assert from_spec.storage_path == str(root / "spec-ray")
    default = runner.locate(smoke_spec(), tracking_uri=None, storage=None)
    assert default.tracking_uri == "sqlite:////environment/mlflow.db"
    assert default.study_dir == str(root / "studies" / "smoke")
    assert default.experiment_path == str(root / "studies" / "smoke" / "ray" / "smoke")


def test_the_ui_command_opens_a_server_without_showing_its_password() -> None:
    summary = runner.StudySummary(
        "s", "https://user:secret@mlflow.example.org/", "7", "run", {}, None, 0
    )
    assert summary.ui_command() == "open https://user:***@mlflow.example.org/#/experiments/7"
    local = replace(summary, tracking_uri="sqlite:////studies/s/mlflow.db")
    assert local.ui_command().endswith(" ui --backend-store-uri sqlite:////studies/s/mlflow.db")


def test_trials_may_ask_for_all_of_a_resource_but_not_for_one_the_cluster_lacks() -> None:
    spec = smoke_spec(resources={"cpu": 2, "gpu": 1})
    runner._check_resources(spec, {"CPU": 2.0, "GPU": 1.0})
    with pytest.raises(UserError, match=r"resources.gpu: each trial asks for 1 GPU, .* has 0;"):
        runner._check_resources(spec, {"CPU": 8.0})  # Ray lists no GPU on a machine without


def test_a_study_stays_where_it_lives_and_the_refusal_hides_the_password() -> None:
    """Without --tracking-uri or --storage, a study continues at its recorded places, even
    when the environment now names others; naming another place is refused."""
    stored = runner.StudyLocation("s", "/studies/s", "/studies/s/ray", "http://u:secret@old:5000")
    asked = replace(stored, tracking_uri="sqlite:////new/mlflow.db", storage_path="/elsewhere")
    runner._require_same_location(stored, asked, tracking_uri=None, storage=None)
    with pytest.raises(
        UserError, match=r"--tracking-uri: .* keeps using http://u:\*\*\*@old"
    ) as refused:
        runner._require_same_location(stored, asked, tracking_uri=asked.tracking_uri, storage=None)
    assert "secret" not in str(refused.value)


def test_resume_finds_a_study_by_its_folder_as_well_as_by_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in (tmp_path / "kept" / "mine", tmp_path / "studies" / "named"):
        folder.mkdir(parents=True)
        (folder / runner.STUDY_FILE).write_text("{}")
    assert runner.find_study("kept/mine") == (tmp_path / "kept" / "mine").resolve()
    assert runner.find_study("named") == (tmp_path / "studies" / "named").resolve()


@pytest.fixture
def closing_port() -> Iterator[int]:
    """A port that accepts connections and closes them at once: no Ray head, no gRPC."""
    with loopback_server(b"") as port:
        yield port


def test_an_address_that_is_no_ray_head_is_refused_before_ray_starts(closing_port: int) -> None:
    """`ray://` addresses are checked at their host and port, as HOST:PORT ones are."""
    for address in (f"127.0.0.1:{closing_port}", f"ray://127.0.0.1:{closing_port}"):
        with pytest.raises(UserError, match=r"something answers at .*, but not a Ray head"):
            runner._check_address_answers(address)
    with pytest.raises(UserError, match=r"--address / RAY_ADDRESS: 'head:http' is not a Ray"):
        runner._check_address_answers("head:http")


def test_resume_of_a_study_without_saved_trials_checks_its_data_before_ray_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted before Tune saved a trial, the study starts its trials afresh on resume:
    on local Ray, their data must be here, as for a new study."""
    import ray

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    study_dir = tmp_path / "studies" / "on-the-nodes"
    study_dir.mkdir(parents=True)
    shutil.copy(cifar_spec(tmp_path), study_dir / runner.SPEC_FILE)
    tracking_uri = f"sqlite:///{study_dir / 'mlflow.db'}"
    runner.StudyLocation(
        "on-the-nodes", str(study_dir), str(study_dir / "ray"), tracking_uri
    ).save()
    with pytest.raises(UserError, match=r"base.data.root"):
        runner.resume_study("on-the-nodes")
    assert not ray.is_initialized() and not (study_dir / "mlflow.db").exists()


def test_a_boundary_study_is_complete_only_once_its_searcher_has_finished(tmp_path: Path) -> None:
    """The boundary searcher may end a study before `num_samples`; until it has, a study
    whose started trials have all ended was interrupted (between two trials)."""
    spec = smoke_spec(
        space={"loss.beta": {"uniform": [0.0, 30.0]}, "loss.tau": {"uniform": [0.2, 1.0]}},
        search={"algorithm": "boundary", "num_samples": 6, "initial_design": 2,
                "order_parameter": "erank_ratio", "threshold": 0.8},
    )  # fmt: skip
    location = runner.StudyLocation(spec.name, str(tmp_path), str(tmp_path / "ray"), "sqlite://")
    Path(location.experiment_path).mkdir(parents=True)
    boundary_searcher(spec).save_to_dir(location.experiment_path)  # as Tune saves it
    assert not runner._complete(spec, location, 4, 4)
    assert not runner._complete(spec, location, 3, 4)
    assert not runner._complete(spec, location, 5, 6), "every trial started, one still ran"
    assert runner._complete(spec, location, 6, 6)
    nothing_saved = replace(location, storage_path=str(tmp_path / "nothing-saved"))
    assert not runner._complete(spec, nothing_saved, 0, 0), "no trial ended: not complete"


def test_a_changed_spec_under_the_name_of_an_existing_study_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Running a spec again continues its study; a spec changed under the same name (here
    by --set) is refused before anything starts, not run in the old study's place."""
    monkeypatch.chdir(tmp_path)
    study_dir = tmp_path / "studies" / "smoke"
    study_dir.mkdir(parents=True)
    shutil.copy(SMOKE, study_dir / runner.SPEC_FILE)
    tracking_uri = f"sqlite:///{study_dir / 'mlflow.db'}"
    runner.StudyLocation("smoke", str(study_dir), str(study_dir / "ray"), tracking_uri).save()
    with pytest.raises(UserError, match=r"name: a study named 'smoke' already exists in .* with a"):
        runner.run_study(SMOKE, assignments=["base.epochs=4"])
    assert not (study_dir / "mlflow.db").exists()
