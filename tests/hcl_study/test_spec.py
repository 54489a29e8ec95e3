"""Study-spec validation: one test per rule, each naming the field it rejects."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
import yaml

from hcl_study.errors import UserError
from hcl_study.study.search import build_scheduler, num_samples, param_space
from hcl_study.study.spec import load_study_spec, parse_study_spec, space_combinations

SEARCH_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


@pytest.fixture
def smoke() -> dict[str, Any]:
    return yaml.safe_load((SEARCH_SPACES / "smoke.yaml").read_text())


def _with(raw: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Apply changes keyed by `__`-separated paths (dots stay inside space keys)."""
    changed = deepcopy(raw)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = changed
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return changed


@pytest.mark.parametrize("path", sorted(SEARCH_SPACES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_specs_are_valid(path: Path) -> None:
    spec = load_study_spec(path)
    assert spec.name and spec.num_trials >= 1


def test_smoke_spec_maps_to_tune(smoke: dict[str, Any]) -> None:
    spec = parse_study_spec(smoke)
    space = param_space(spec)
    assert set(space) == {"loss.beta", "optimizer.lr", "loss.tau", "normalization"}
    assert space["loss.beta"].lower == 0.0 and space["loss.beta"].upper == 30.0
    assert space["normalization"].categories == ["none", "ball", "sphere"]
    assert num_samples(spec) == 4
    trial = spec.trial_config({"loss.beta": 12.5, "normalization": "ball"})
    assert trial.loss.beta == 12.5 and trial.normalization == "ball"
    assert trial.loss.tau == 1.0  # untouched base value


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"name": "has space"}, "name", "pattern"),
        ({"base__loss__tau": 0}, "base.loss.tau", "greater than 0"),
        ({"base__loss__beta": -1}, "base.loss.beta", "greater than or equal to 0"),
        ({"base__optimizer__lr": 0}, "base.optimizer.lr", "greater than 0"),
        ({"base__epochs": 0}, "base.epochs", "greater than or equal to 1"),
        ({"base__normalization": "cube"}, "base.normalization", "'none', 'ball' or 'sphere'"),
        ({"base__loss__name": "triplet"}, "base.loss.name", "'scl' or 'ucl'"),
        ({"base__model__feature_dim": 0}, "base.model.feature_dim", "greater than or equal to 1"),
        ({"base__lossy": 1}, "base.lossy", "unknown key"),
        ({"search__num_samples": 0}, "search.num_samples", "greater than or equal to 1"),
        (
            {"search__algorithm": "bayes"},
            "search.algorithm",
            "'optuna', 'random', 'grid' or 'boundary'",
        ),
        ({"search__max_concurrent": "two"}, "search.max_concurrent", "valid integer"),
        (
            {"space__loss.beta": {"uniform": [-5.0, 3.0]}},
            "space.loss.beta",
            "greater than or equal to 0",
        ),
        ({"space__loss.tau": {"uniform": [1.0, 0.5]}}, "space.loss.tau", "low < high"),
        (
            {"space__optimizer.lr": {"loguniform": [0.0, 0.1]}},
            "space.optimizer.lr",
            "low + offset > 0",
        ),
        (
            {"space__loss.tau": {"choice": [0.5], "uniform": [0.1, 1]}},
            "space.loss.tau",
            "exactly one",
        ),
        (
            {"space__loss.temperature": {"choice": [0.5]}},
            "space.loss.temperature",
            "not a training-config field",
        ),
        (
            {"space__normalization": {"choice": ["none", "cube"]}},
            "space.normalization",
            "'none', 'ball' or 'sphere'",
        ),
        ({"objective__metric": "accuracy"}, "objective.metric", "erank_means"),
        ({"scheduler__name": "hyperband"}, "scheduler.name", "'fifo' or 'asha'"),
        ({"resources__gpu": -1}, "resources.gpu", "greater than or equal to 0"),
        ({"resources__cpu": 0}, "resources.cpu", "greater than 0"),
        ({"name": ".."}, "name", "pattern"),  # studies/NAME must stay inside studies/
        ({"name": "a" * 101}, "name", "at most 100 characters"),
        ({"search__max_concurrent": 0}, "search.max_concurrent", "greater than or equal to 1"),
        ({"checkpoint_every": 0}, "checkpoint_every", "greater than or equal to 1"),
        ({"max_failures": -1}, "max_failures", "greater than or equal to 0"),
        (
            {"scheduler": {"name": "asha", "grace_period": 0}},
            "scheduler.grace_period",
            "greater than or equal to 1",
        ),
        (
            {"scheduler": {"name": "asha", "reduction_factor": 1}},
            "scheduler.reduction_factor",
            "greater than 1",
        ),
        ({"space__loss.tau": {}}, "space.loss.tau", "exactly one distribution"),
        ({"space__loss.tau": {"choice": []}}, "space.loss.tau.choice", "at least 1 item"),
        ({"space__loss.beta": {"uniform": [5.0, 5.0]}}, "space.loss.beta", "low < high"),
        (
            {"space__loss.beta": {"uniform": [0.0, 5.0], "offset": 1}},
            "space.loss.beta",
            "offset applies to loguniform only",
        ),
        (
            {"space__optimizer.lr": {"loguniform": [0.01, 0.1], "offset": -0.001}},
            "space.optimizer.lr.offset",
            "greater than or equal to 0",
        ),
        (  # the inner point 1 + 8/2 would be an integer; 1 + 8/π is not
            {"space__epochs": {"uniform": [1, 9]}},
            "space.epochs allows",
            "for an integer field use int: [low, high]",
        ),
        (
            {"space__device": {"choice": ["cpu", "cuda"]}},
            "space.device",
            "without a GPU reserved for it",
        ),
        (
            {"space__cpu_threads": {"choice": [1, 2]}},
            "space.cpu_threads",
            "2 torch threads on the 1 CPUs",
        ),
        (  # Ray gives 1.5 CPUs: a second torch thread would share a core
            {"resources__cpu": 1.5, "base__cpu_threads": 2},
            "base.cpu_threads",
            "allowed: at most 1,",
        ),
    ],
)
def test_invalid_specs_name_the_field(
    smoke: dict[str, Any], changes: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(UserError) as raised:
        parse_study_spec(_with(smoke, **changes))
    message = str(raised.value)
    assert field in message and allowed in message


def test_empty_space_is_refused(smoke: dict[str, Any]) -> None:
    with pytest.raises(UserError, match="space: the search space is empty"):
        parse_study_spec(_with(smoke, space={}))


def test_grid_study_runs_each_point_once(smoke: dict[str, Any]) -> None:
    raw = _with(
        smoke,
        space={"loss.beta": {"grid": [0, 5, 30]}, "normalization": {"choice": ["ball", "sphere"]}},
        search={"algorithm": "grid"},
    )
    spec = parse_study_spec(raw)
    assert spec.num_trials == 6 and num_samples(spec) == 1
    assert len(space_combinations(spec)) == 6
    with pytest.raises(UserError, match=r"search.num_samples: a grid study runs each of its 6"):
        parse_study_spec(_with(raw, search={"algorithm": "grid", "num_samples": 4}))


def test_grid_study_may_name_its_own_size_as_num_samples(smoke: dict[str, Any]) -> None:
    raw = _with(
        smoke,
        space={"loss.beta": {"grid": [0, 5, 30]}, "normalization": {"choice": ["ball", "sphere"]}},
        search={"algorithm": "grid", "num_samples": 6},
    )
    assert parse_study_spec(raw).num_trials == 6


def test_grid_needs_enumerable_values(smoke: dict[str, Any]) -> None:
    with pytest.raises(
        UserError, match=r"space.loss.beta: search.algorithm 'grid' needs grid or choice"
    ):
        parse_study_spec(_with(smoke, search={"algorithm": "grid"}))


def test_grid_values_need_grid_algorithm(smoke: dict[str, Any]) -> None:
    with pytest.raises(
        UserError, match=r"space.loss.beta: 'grid' values need search.algorithm: grid"
    ):
        parse_study_spec(_with(smoke, **{"space__loss.beta": {"grid": [0, 5]}}))


def test_boundary_search_refuses_asha(smoke: dict[str, Any]) -> None:
    raw = _with(
        smoke,
        search={
            "algorithm": "boundary",
            "num_samples": 8,
            "order_parameter": "erank_ratio",
            "threshold": 0.9,
        },
        scheduler={"name": "asha"},
    )
    with pytest.raises(UserError, match="scheduler.name: boundary search needs full-length trials"):
        parse_study_spec(raw)


def test_boundary_search_needs_order_parameter(smoke: dict[str, Any]) -> None:
    with pytest.raises(UserError, match="search.order_parameter and search.threshold are required"):
        parse_study_spec(_with(smoke, search={"algorithm": "boundary", "num_samples": 8}))


BOUNDARY = {"algorithm": "boundary", "order_parameter": "erank_ratio", "threshold": 0.9}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {
                "search": {
                    "algorithm": "boundary",
                    "num_samples": 72,
                    "order_parameter": "erank_ratio",
                }
            },
            "search.order_parameter and search.threshold are required",
        ),
        (
            {"search": {"algorithm": "boundary", "num_samples": 72, "threshold": 0.9}},
            "search.order_parameter and search.threshold are required",
        ),
        (
            {"search": BOUNDARY | {"num_samples": 72, "order_parameter": "erank"}},
            "search.order_parameter: unknown metric 'erank'; allowed: loss,",
        ),
        (
            {"search": BOUNDARY | {"num_samples": 72, "initial_design": 1}},
            "search.initial_design: Input should be greater than or equal to 2",
        ),
        (
            {"search": BOUNDARY | {"num_samples": 16}, "space": {"loss.tau": {"choice": [0.2, 1]}}},
            "space: boundary search needs at least one uniform or loguniform axis",
        ),
        (
            {"search": BOUNDARY | {"num_samples": 72}, "space__epochs": {"int": [2, 5]}},
            "space: boundary search takes uniform, loguniform and choice axes",
        ),
    ],
    ids=[
        "no-threshold",
        "no-order-parameter",
        "unknown-order-parameter",
        "design-of-one-point",
        "no-continuous-axis",
        "int-axis",
    ],
)
def test_invalid_boundary_searches_name_the_field(
    smoke: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserError) as raised:
        parse_study_spec(_with(smoke, **changes))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("target_error", 0.02), ("order_parameter", "erank_ratio"), ("threshold", 0.9)]
    + [("initial_design", 4)],
)
def test_boundary_fields_only_with_boundary_search(
    smoke: dict[str, Any], field: str, value: Any
) -> None:
    raw = _with(smoke, **{f"search__{field}": value})
    with pytest.raises(UserError, match=rf"search.{field}: applies to search.algorithm: boundary"):
        parse_study_spec(raw)


@pytest.mark.parametrize("field", ["metric", "mode", "grace_period", "reduction_factor"])
def test_asha_fields_only_with_asha(smoke: dict[str, Any], field: str) -> None:
    value = {"metric": "etf_distance", "mode": "min", "grace_period": 2, "reduction_factor": 2}
    raw = _with(smoke, scheduler={"name": "fifo", field: value[field]})
    with pytest.raises(UserError, match=rf"scheduler.{field}: applies to scheduler.name: asha"):
        parse_study_spec(raw)


def test_boundary_budget_counts_every_category(smoke: dict[str, Any]) -> None:
    # smoke's space has two choice axes of 3 values: 9 boundaries of 8 design points each.
    assert parse_study_spec(_with(smoke, search=BOUNDARY | {"num_samples": 72})).num_trials == 72
    with pytest.raises(UserError, match=r"8 design points x 9 boundaries = 72.*at least 72"):
        parse_study_spec(_with(smoke, search=BOUNDARY | {"num_samples": 71}))
    with pytest.raises(UserError, match=r"num_samples \(the cap\) must be at least 144"):
        parse_study_spec(_with(smoke, search=BOUNDARY | {"num_samples": 143, "target_error": 0.05}))


def test_asha_runs_to_the_longest_epochs_of_the_space(smoke: dict[str, Any]) -> None:
    raw = _with(smoke, scheduler={"name": "asha"}, **{"space__epochs": {"int": [2, 5]}})
    spec = parse_study_spec(raw)
    assert spec.max_epochs == 5 and build_scheduler(spec)._max_t == 5
    with pytest.raises(UserError, match=r"scheduler.grace_period: .*allowed: 1 to 5"):
        parse_study_spec(_with(raw, scheduler={"name": "asha", "grace_period": 6}))


def test_target_error_needs_at_most_two_continuous_axes(smoke: dict[str, Any]) -> None:
    raw = _with(
        smoke,
        search=BOUNDARY | {"target_error": 0.02, "num_samples": 48},
        **{"space__loss.tau": {"uniform": [0.1, 1.0]}},
    )
    with pytest.raises(UserError, match=r"search.target_error: .* this space has 3"):
        parse_study_spec(raw)
    del raw["space"]["optimizer.lr"]
    assert parse_study_spec(raw).search.target_error == 0.02


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_target_error_must_lie_between_0_and_half(smoke: dict[str, Any], value: float) -> None:
    raw = _with(smoke, search=BOUNDARY | {"target_error": value})
    with pytest.raises(UserError, match=r"search.target_error"):
        parse_study_spec(raw)


def test_offset_only_with_boundary_search(smoke: dict[str, Any]) -> None:
    raw = _with(smoke, **{"space__loss.beta": {"loguniform": [0, 50], "offset": 1}})
    with pytest.raises(UserError, match=r"space.loss.beta.offset"):
        parse_study_spec(raw)


def test_asha_scheduler_uses_named_metric(smoke: dict[str, Any]) -> None:
    raw = _with(
        smoke,
        scheduler={"name": "asha", "metric": "etf_distance", "mode": "min", "grace_period": 2},
    )
    scheduler = build_scheduler(parse_study_spec(raw))
    assert scheduler.metric == "etf_distance" and scheduler._max_t == 3
    with pytest.raises(UserError, match="scheduler.metric: unknown metric 'nope'"):
        parse_study_spec(_with(raw, scheduler={"name": "asha", "metric": "nope", "mode": "min"}))


def test_asha_grace_period_may_equal_the_longest_trial(smoke: dict[str, Any]) -> None:
    """Trials of 3 epochs allow a grace period of 1 to 3, 3 included (one rung, at the end)."""
    raw = _with(smoke, scheduler={"name": "asha", "grace_period": 3})
    assert parse_study_spec(raw).scheduler.grace_period == 3


def test_a_spec_file_names_itself_in_its_errors(smoke: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(_with(smoke, search__num_samples=0)))
    with pytest.raises(UserError) as raised:
        load_study_spec(path)
    assert str(raised.value).startswith(f"Invalid study spec {path}: search.num_samples:")
