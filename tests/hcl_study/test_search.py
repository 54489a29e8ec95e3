"""A study spec as Tune's search space, search algorithm and scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from hcl_study.levelset import Axis
from hcl_study.study.search import (
    boundary_searcher,
    build_scheduler,
    build_search_algorithm,
    param_space,
    tune_domain,
)
from hcl_study.study.spec import StudySpec, parse_study_spec

SMOKE = Path(__file__).resolve().parents[2] / "search_spaces" / "smoke.yaml"


def smoke_spec(**changes: Any) -> StudySpec:
    """search_spaces/smoke.yaml with top-level `changes`."""
    return parse_study_spec(yaml.safe_load(SMOKE.read_text()) | changes)


def samples(entry: dict[str, Any], size: int = 2000) -> np.ndarray:
    domain = tune_domain(smoke_spec(space={"loss.beta": entry}).space["loss.beta"])
    return np.asarray(domain.sample(size=size, random_state=np.random.default_rng(0)))


def test_space_entries_become_tune_domains_with_their_bounds_and_scales() -> None:
    assert set(samples({"int": [2, 5]}).tolist()) == {2, 3, 4, 5}, "int bounds are inclusive"
    log = samples({"loguniform": [1e-4, 1e-2]})
    assert log.min() >= 1e-4 and log.max() <= 1e-2
    # Half the mass of a log-uniform law lies below the geometric mean (a uniform: 9 %).
    assert 0.45 < np.mean(log < 1e-3) < 0.55
    flat = samples({"uniform": [0.0, 30.0]})
    assert flat.min() >= 0.0 and flat.max() <= 30.0 and 0.45 < np.mean(flat < 15.0) < 0.55
    assert set(samples({"choice": [0.5, 2.0]}).tolist()) == {0.5, 2.0}


def test_a_grid_search_runs_the_values_of_grid_and_choice_entries() -> None:
    spec = smoke_spec(
        space={"loss.beta": {"grid": [0, 5, 30]}, "normalization": {"choice": ["ball", "sphere"]}},
        search={"algorithm": "grid"},
    )
    assert param_space(spec) == {
        "loss.beta": {"grid_search": [0, 5, 30]},
        "normalization": {"grid_search": ["ball", "sphere"]},
    }


def noop_trainable(config: dict[str, Any]) -> None:
    """Tune's experiment needs a trainable to expand configurations for."""


def random_configs(seed: int) -> list[dict[str, Any]]:
    """The configurations a random search of 3 trials, 2 at a time, starts with."""
    spec = smoke_spec(search={"algorithm": "random", "num_samples": 3, "max_concurrent": 2,
                              "seed": seed})  # fmt: skip
    generator = build_search_algorithm(spec)
    generator.add_configurations(
        {"x": {"run": noop_trainable, "config": param_space(spec), "num_samples": 3}}
    )
    trials = [generator.next_trial() for _ in range(3)]
    return [trial.config for trial in trials if trial is not None]


def test_random_search_is_seeded_and_runs_max_concurrent_trials_at_a_time() -> None:
    first = random_configs(3)
    assert len(first) == 2, "the third trial waits for one of the first two"
    assert random_configs(3) == first
    assert random_configs(4) != first


def optuna_suggestions(seed: int) -> tuple[list[dict[str, Any]], int]:
    spec = smoke_spec(search={"algorithm": "optuna", "num_samples": 4, "max_concurrent": 3,
                              "seed": seed})  # fmt: skip
    searcher = build_search_algorithm(spec)
    assert searcher.set_search_properties(None, None, param_space(spec))
    return [searcher.suggest(f"t{index}") for index in range(3)], searcher.max_concurrent


def test_optuna_search_is_seeded_and_limited_to_max_concurrent() -> None:
    first, max_concurrent = optuna_suggestions(7)
    assert max_concurrent == 3
    assert optuna_suggestions(7)[0] == first
    assert optuna_suggestions(8)[0] != first


def test_boundary_searcher_takes_the_spec_axes_categories_and_settings() -> None:
    spec = smoke_spec(
        space={
            "loss.beta": {"loguniform": [0.0, 50.0], "offset": 1.0},
            "loss.tau": {"uniform": [0.1, 1.0]},
            "normalization": {"choice": ["ball", "sphere"]},
        },
        search={"algorithm": "boundary", "num_samples": 24, "initial_design": 6, "seed": 5,
                "order_parameter": "erank_ratio", "threshold": 0.8, "target_error": 0.05},
    )  # fmt: skip
    searcher = boundary_searcher(spec)
    assert searcher.axes == (
        Axis("loss.beta", 0.0, 50.0, log=True, offset=1.0),
        Axis("loss.tau", 0.1, 1.0),
    )
    assert searcher.categories == {"normalization": ["ball", "sphere"]}
    assert (searcher.metric, searcher.threshold) == ("erank_ratio", 0.8)
    assert (searcher.seed, searcher.target_error) == (5, 0.05)
    assert [len(cell.design) for cell in searcher._cells] == [6, 6], "initial design per cell"


@pytest.mark.parametrize(("mode", "metric"), [("min", "etf_distance"), ("max", "erank_means")])
def test_asha_scheduler_takes_its_metric_mode_and_rungs(mode: str, metric: str) -> None:
    spec = smoke_spec(
        base=yaml.safe_load(SMOKE.read_text())["base"] | {"epochs": 12},
        scheduler={"name": "asha", "metric": metric, "mode": mode, "grace_period": 2,
                   "reduction_factor": 3},
    )  # fmt: skip
    scheduler = build_scheduler(spec)
    assert (scheduler._metric, scheduler._mode, scheduler._max_t) == (metric, mode, 12)
    # Rungs at grace_period * reduction_factor**k below max_t.
    assert [milestone for milestone, _ in scheduler._brackets[0]._rungs] == [6.0, 2.0]
