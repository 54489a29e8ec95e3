"""BoundarySearcher: bounds and scales, no duplicates, state round trips, concurrency, Tune."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray.tune.search import Searcher

from hcl_study.levelset import (
    Axis,
    GPRegression,
    fit_gp_regression,
    from_unit,
    propose,
    space_filling_point,
    success_probability,
    to_unit,
    unit_grid,
)
from hcl_study.study import boundary_search
from hcl_study.study.boundary_search import BoundarySearcher, CategoryEstimate

BETA = Axis("loss.beta", 0.0, 50.0, log=True, offset=1.0)
TAU = Axis("loss.tau", 0.1, 1.0)
LR = Axis("lr", 1e-4, 1e-1, log=True)
LR_CROSSING = 10**-2.3  # where the 1-D oracle crosses 0.5


def phase_2d(config: dict[str, Any]) -> float:
    """A smooth order parameter, about 1 at small β and 0 past log(β + 1) = 1 + 2τ."""
    return 1.0 / (
        1.0 + math.exp((math.log1p(config["loss.beta"]) - 1.0 - 2.0 * config["loss.tau"]) / 0.2)
    )


def dc_or_curved(config: dict[str, Any]) -> float:
    """No boundary for normalization "none" (DC everywhere), `phase_2d` for the others."""
    if config["normalization"] == "none":
        return 0.1 + 0.05 * config["loss.tau"]
    return phase_2d(config)


def phase_1d(config: dict[str, Any]) -> float:
    """Noiseless, monotone in log lr, crossing 0.5 at lr = 10**-2.3."""
    return 1.0 / (1.0 + math.exp(-(math.log10(config["lr"]) + 2.3) / 0.2))


def phase_2d_error(estimate: CategoryEstimate) -> float:
    """Share of the grid where the estimated region disagrees with phase_2d's."""
    _, grid = unit_grid(2)
    natural = from_unit([BETA, TAU], grid)  # (k*k, 2)
    truth = np.log1p(natural[:, 0]) < 1.0 + 2.0 * natural[:, 1]  # phase_2d > 0.5
    return float(np.mean(estimate.level_set.region.ravel() != truth))


def run(searcher: BoundarySearcher, oracle, trials: int, start: int = 0) -> list[dict[str, Any]]:
    """Sequential suggest / complete, as Tune does with one trial at a time."""
    configs = []
    for number in range(start, start + trials):
        config = searcher.suggest(f"t{number}")
        searcher.on_trial_complete(f"t{number}", {"erank_ratio": oracle(config)})
        configs.append(config)
    return configs


def unit_points(configs: list[dict[str, Any]], axes: list[Axis]) -> np.ndarray:
    return to_unit(axes, [[config[axis.name] for axis in axes] for config in configs])


def min_pairwise_distance(points: np.ndarray) -> float:
    distance = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)
    return float(distance[np.triu_indices(len(points), k=1)].min())


def test_configs_respect_bounds_log_scale_categories_and_fixed_values() -> None:
    searcher = BoundarySearcher(
        [BETA, TAU],
        "erank_ratio",
        0.5,
        categories={"normalization": ["none", "sphere"]},
        fixed={"loss.name": "hcl"},
        initial_design=8,
    )
    configs = run(searcher, phase_2d, 20)
    assert all(0.0 <= c["loss.beta"] <= 50.0 and 0.1 <= c["loss.tau"] <= 1.0 for c in configs)
    assert all(c["loss.name"] == "hcl" for c in configs)
    # The two designs take turns; afterwards the value with the larger SUR score goes next.
    assert [c["normalization"] for c in configs[:16]] == ["none", "sphere"] * 8
    assert sum(c["normalization"] == "none" for c in configs) in range(8, 13)
    # The initial design is a Latin hypercube in log(β + 1): one point per eighth.
    design = [c for c in configs if c["normalization"] == "none"][:8]
    strata = np.floor(BETA.to_unit([c["loss.beta"] for c in design]) * 8)
    assert sorted(strata) == list(range(8))


def test_no_duplicate_proposals_on_a_noisy_oracle() -> None:
    rng = np.random.default_rng(0)
    searcher = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5, seed=1)
    configs = run(searcher, lambda c: phase_2d(c) + 0.05 * rng.normal(), 24)
    assert min_pairwise_distance(unit_points(configs, [BETA, TAU])) > searcher.min_distance


def test_save_and_restore_continue_identically(tmp_path: Path) -> None:
    def make() -> BoundarySearcher:
        return BoundarySearcher([BETA, TAU], "erank_ratio", 0.5, seed=3)

    original = make()
    run(original, phase_2d, 12)
    original.suggest("pending")  # in flight while the experiment is saved
    original.save(str(tmp_path / "searcher.pkl"))

    restored = make()
    restored.restore(str(tmp_path / "searcher.pkl"))
    for searcher in (original, restored):
        searcher.on_trial_complete("pending", {"erank_ratio": 0.4})
    assert restored.suggest("next") == original.suggest("next")
    assert restored.estimate()[0].n_completed == 13


def test_noiseless_1d_oracle_is_bracketed_within_2_percent_in_12_trials() -> None:
    searcher = BoundarySearcher([LR], "erank_ratio", 0.5, initial_design=6)
    configs = run(searcher, phase_1d, 12)
    unit = unit_points(configs, [LR])[:, 0]  # (12,)
    crossing = LR.to_unit(LR_CROSSING)
    below, above = unit[unit < crossing].max(), unit[unit > crossing].min()
    assert above - below <= 0.02
    [estimate] = searcher.estimate()
    [[[found]]] = estimate.level_set.contour
    assert abs(LR.to_unit(found) - crossing) < 0.01


def search_to_target(target_error: float) -> tuple[BoundarySearcher, int]:
    """A searcher (design 6) run one trial at a time on phase_2d until it says FINISHED, and
    how many trials that took."""
    searcher = BoundarySearcher(
        [BETA, TAU], "erank_ratio", 0.5, initial_design=6, seed=1, target_error=target_error
    )
    trials = 0
    while (config := searcher.suggest(f"t{trials}")) != Searcher.FINISHED:
        searcher.on_trial_complete(f"t{trials}", {"erank_ratio": phase_2d(config)})
        trials += 1
        assert trials < 60, "never reached the target error"
    return searcher, trials


def test_target_error_ends_the_search_once_the_boundary_is_known() -> None:
    searcher, trials = search_to_target(0.01)
    assert trials >= 12  # not before twice the initial design
    assert searcher.suggest("again") == Searcher.FINISHED
    [estimate] = searcher.estimate()
    assert estimate.level_set.expected_error <= 0.01
    assert phase_2d_error(estimate) <= 0.01
    without_target = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5, initial_design=6, seed=1)
    run(without_target, phase_2d, trials)
    assert isinstance(without_target.suggest("more"), dict)


def normalization_searcher(values: list[str], **kwargs: Any) -> BoundarySearcher:
    """A (β, τ) searcher at level 0.5 with one boundary per normalization, designs of 6."""
    return BoundarySearcher(
        [BETA, TAU],
        "erank_ratio",
        0.5,
        categories={"normalization": values},
        initial_design=6,
        **kwargs,
    )


def test_trials_go_to_the_category_whose_boundary_is_uncertain() -> None:
    both = normalization_searcher(["none", "sphere"], seed=0)
    configs = run(both, dc_or_curved, 30)
    assert Counter(c["normalization"] for c in configs) == {"none": 6, "sphere": 24}
    sphere_alone = normalization_searcher(["sphere"], seed=0)
    run(sphere_alone, dc_or_curved, 15)  # what taking turns would have given it
    assert phase_2d_error(both.estimate()[1]) < 0.5 * phase_2d_error(sphere_alone.estimate()[0])


def test_pending_trials_count_against_the_uncertainty_of_their_category() -> None:
    searcher = normalization_searcher(["ball", "sphere"], seed=0)
    run(searcher, phase_2d, 12)
    # Without pending fantasies the four would all go to one value: a point next to a
    # pending one would promise almost the same shrinkage of the error as that one.
    batch = [searcher.suggest(f"p{i}") for i in range(4)]
    assert Counter(c["normalization"] for c in batch) == {"ball": 2, "sphere": 2}


def test_a_category_that_reached_target_error_gets_no_more_trials() -> None:
    searcher = normalization_searcher(["none", "sphere"], seed=1, target_error=0.01)
    configs = []
    while (config := searcher.suggest(f"t{len(configs)}")) != Searcher.FINISHED:
        searcher.on_trial_complete(f"t{len(configs)}", {"erank_ratio": dc_or_curved(config)})
        configs.append(config)
        assert len(configs) < 80, "never reached the target error"
    counts = Counter(config["normalization"] for config in configs)
    assert counts["none"] == 12  # settles at twice its initial design, not more
    assert counts["sphere"] > 14
    assert all(estimate.level_set.expected_error <= 0.01 for estimate in searcher.estimate())


def test_pending_trials_are_fantasized_so_concurrent_proposals_spread() -> None:
    searcher = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5, initial_design=8, seed=2)
    run(searcher, phase_2d, 12)
    batch = [searcher.suggest(f"p{i}") for i in range(4)]
    points = unit_points(batch, [BETA, TAU])
    assert len({tuple(p) for p in points}) == 4
    assert min_pairwise_distance(points) > 0.05


def test_searcher_enforces_the_concurrency_limit_itself() -> None:
    searcher = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5)
    assert searcher.set_max_concurrency(2)  # so Tune's ConcurrencyLimiter stands aside
    assert searcher.suggest("a") is not None and searcher.suggest("b") is not None
    assert searcher.suggest("c") is None
    searcher.on_trial_complete("a", {"erank_ratio": 0.3})
    assert searcher.suggest("c") is not None


def test_failed_trials_stay_out_of_the_model_and_their_spot_is_avoided() -> None:
    searcher = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5, initial_design=4)
    first = searcher.suggest("diverged")
    searcher.on_trial_complete("diverged", {"erank_ratio": float("nan")})
    searcher.suggest("errored")
    searcher.on_trial_complete("errored", error=True)
    searcher.suggest("cancelled")
    searcher.on_trial_complete("cancelled")  # removed before it ran: forgotten
    configs = run(searcher, phase_2d, 12)
    [estimate] = searcher.estimate()
    assert (estimate.n_completed, estimate.n_failed) == (12, 2)
    failed = unit_points([first], [BETA, TAU])
    later = unit_points(configs, [BETA, TAU])
    assert np.linalg.norm(later - failed, axis=1).min() > searcher.failure_radius


def test_a_region_where_trials_fail_stops_drawing_trials() -> None:
    """Past log(β + 1) = 3.3 every trial diverges. The GP knows nothing there, so
    without weighting by the chance of success SUR would keep probing it (seed 0: 24 of
    the 32 trials after the design failed, error 0.7 %); with it 5 do (error 0.05 %)."""
    searcher = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5, seed=0)
    failing = 0
    for number in range(40):
        config = searcher.suggest(f"t{number}")
        if math.log1p(config["loss.beta"]) > 3.3:
            failing += number >= 8
            searcher.on_trial_complete(f"t{number}", {"erank_ratio": float("nan")})
        else:
            searcher.on_trial_complete(f"t{number}", {"erank_ratio": phase_2d(config)})
    assert failing <= 10, f"{failing} of the 32 trials after the design failed"
    [estimate] = searcher.estimate()
    assert phase_2d_error(estimate) <= 0.005


def test_the_end_of_the_search_is_final() -> None:
    """Once `suggest` says FINISHED (every combination at its target), Tune starts no more
    trials: results of trials still running that raise the error again do not reopen it."""
    searcher, _ = search_to_target(0.01)
    assert searcher.finished
    running = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5, seed=2).suggest("late")
    searcher._pending["late"] = (0, unit_points([running], [BETA, TAU])[0])
    searcher.on_trial_complete("late", {"erank_ratio": 1.0 - phase_2d(running)})  # a far outlier
    assert not searcher._settled(0), "the outlier raised the expected error past the target"
    assert searcher.finished and searcher.suggest("again") == Searcher.FINISHED


def test_search_ends_when_nothing_is_left_to_try() -> None:
    """On one axis where most of the range diverges, the failed trials' exclusion zones
    and the results' cover the line: the search ends (FINISHED) rather than raising."""
    searcher = BoundarySearcher([BETA], "erank_ratio", 0.5, seed=0)
    rng = np.random.default_rng(0)
    for number in range(200):
        config = searcher.suggest(f"t{number}")
        if config == Searcher.FINISHED:
            break
        unit = to_unit([BETA], [[config["loss.beta"]]])[0, 0]
        value = float("nan") if unit < 0.8 else 0.5 + 0.05 * rng.normal()
        searcher.on_trial_complete(f"t{number}", {"erank_ratio": value})
    assert config == Searcher.FINISHED and searcher.finished
    assert number < 100


def test_resumed_errored_trial_counts_as_a_result() -> None:
    searcher = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5)
    searcher.suggest("flaky")
    searcher.on_trial_complete("flaky", error=True)
    searcher.on_trial_complete("flaky", {"erank_ratio": 0.7})
    [estimate] = searcher.estimate()
    assert (estimate.n_completed, estimate.n_failed) == (1, 0)
    # A retried failed trial that errors again after its final report counts by that report.
    searcher.suggest("flaky_twice")
    searcher.on_trial_complete("flaky_twice", error=True)
    searcher.on_trial_result("flaky_twice", {"erank_ratio": 0.2, "epoch": 4, "total_epochs": 5})
    searcher.on_trial_complete("flaky_twice", error=True)
    [estimate] = searcher.estimate()
    assert (estimate.n_completed, estimate.n_failed) == (2, 0)
    assert searcher._cells[0].observed_y == [0.7, 0.2]


def test_an_error_after_the_final_report_counts_by_that_report() -> None:
    """With no retry left Tune completes such a trial with error=True and no result; the
    trainable had logged its final epoch and closed its run, so the point is a result."""
    searcher = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5)
    final = {"erank_ratio": 0.7, "epoch": 4, "total_epochs": 5}
    for trial_id in ("after_the_end", "mid_run"):
        searcher.suggest(trial_id)
        searcher.on_trial_result(trial_id, {**final, "epoch": 3})
    searcher.on_trial_result("after_the_end", final)
    for trial_id in ("after_the_end", "mid_run"):
        searcher.on_trial_complete(trial_id, error=True)
    [estimate] = searcher.estimate()
    assert (estimate.n_completed, estimate.n_failed) == (1, 1)
    assert searcher._cells[0].observed_y == [0.7]
    assert not searcher._last_results, "reports of ended trials are not kept"
    searcher.on_trial_result("never_suggested", final)
    assert not searcher._last_results, "nor those of trials it does not know"


def test_estimate_gives_one_level_set_per_category() -> None:
    searcher = BoundarySearcher(
        [BETA, TAU], "erank_ratio", 0.5, categories={"normalization": ["ball", "sphere"]}
    )
    run(searcher, phase_2d, 32)
    estimates = searcher.estimate(resolution=40)
    assert [e.category for e in estimates] == [
        {"normalization": "ball"},
        {"normalization": "sphere"},
    ]
    assert sum(e.n_completed for e in estimates) == 32
    for estimate in estimates:
        assert estimate.n_completed >= 8  # its initial design at least
        line = np.vstack(estimate.level_set.contour)  # natural (β, τ)
        assert np.all(np.abs(np.log1p(line[:, 0]) - 1.0 - 2.0 * line[:, 1]) < 0.3)
        assert estimate.to_dict()["level_set"]["contour"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"axes": []},
        {"categories": {"loss.beta": ["a"]}},
        {"categories": {"normalization": []}},
        {"initial_design": 1},
        {"acquisition": "ei"},
        {"target_error": 0.5},
        {"target_error": 0.05, "axes": [BETA, TAU, LR]},
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any]) -> None:
    settings = {"axes": [BETA, TAU], "metric": "erank_ratio", "threshold": 0.5} | kwargs
    with pytest.raises(ValueError):
        BoundarySearcher(**settings)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_tuner_restore_resumes_errored_trials_with_the_searcher_state(
    ray_session, tmp_path: Path
) -> None:
    from ray import tune

    flag = tmp_path / "fail-upper-half"
    flag.touch()

    def trainable(config: dict[str, Any]) -> None:
        if Path(config["flag"]).exists() and config["lr"] > 10**-2.5:
            raise RuntimeError("simulated crash")
        tune.report(
            {"erank_ratio": 1.0 / (1.0 + math.exp(-(math.log10(config["lr"]) + 2.3) / 0.2))}
        )

    searcher = BoundarySearcher(
        [LR], "erank_ratio", 0.5, initial_design=4, fixed={"flag": str(flag)}
    )
    tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=6, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="bs", verbose=0),
    ).fit()
    experiment = tmp_path / "bs"
    first = BoundarySearcher([LR], "erank_ratio", 0.5)
    first.restore_from_dir(str(experiment))
    [before] = first.estimate()
    assert before.n_failed > 0 and before.n_completed + before.n_failed == 6

    flag.unlink()
    results = tune.Tuner.restore(str(experiment), trainable, resume_errored=True).fit()
    assert not results.errors
    after_restore = BoundarySearcher([LR], "erank_ratio", 0.5)
    after_restore.restore_from_dir(str(experiment))
    [after] = after_restore.estimate()
    assert (after.n_completed, after.n_failed) == (6, 0)


def test_tune_passes_the_reports_that_make_an_error_after_the_last_one_a_result(
    ray_session, tmp_path: Path
) -> None:
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        lr_exponent = math.log10(config["lr"])
        for epoch in range(2):
            tune.report({"erank_ratio": lr_exponent + epoch, "epoch": epoch, "total_epochs": 2})
        raise RuntimeError("crash after the final report")

    searcher = BoundarySearcher([LR], "erank_ratio", 0.5, initial_design=3)
    tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=3, max_concurrent_trials=1),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path),
            name="bs",
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    ).fit()
    restored = BoundarySearcher([LR], "erank_ratio", 0.5)
    restored.restore_from_dir(str(tmp_path / "bs"))
    [estimate] = restored.estimate()
    assert (estimate.n_completed, estimate.n_failed) == (3, 0)
    observed_lr = np.array(restored._cells[0].observed_x)[:, 0]  # (3,) unit coordinates
    lr_exponents = np.log10(from_unit([LR], observed_lr[:, None])[:, 0])
    assert restored._cells[0].observed_y == pytest.approx([e + 1 for e in lr_exponents])


def failure_covered_searcher(**kwargs: Any) -> BoundarySearcher:
    """One log axis, design 4, failure radius 0.7: results 0.3 and 0.4 at the first two
    design points, then the third fails and its zone covers every point left."""
    searcher = BoundarySearcher(
        [LR], "erank_ratio", 0.5, initial_design=4, failure_radius=0.7, **kwargs
    )
    for number, value in enumerate([0.3, 0.4, float("nan")]):
        assert isinstance(searcher.suggest(f"t{number}"), dict)
        searcher.on_trial_complete(f"t{number}", {"erank_ratio": value})
    return searcher


def test_a_finished_search_stays_finished_after_save_and_restore(tmp_path: Path) -> None:
    """One log axis with a failure radius of 0.7: the third design point fails and rules out
    every candidate, so the search ends; a restored searcher knows that at once."""
    searcher = failure_covered_searcher()
    assert searcher.suggest("t3") == Searcher.FINISHED and searcher.finished
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = BoundarySearcher([LR], "erank_ratio", 0.5)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.finished


def test_the_last_report_of_a_running_trial_survives_save_and_restore(tmp_path: Path) -> None:
    """A trial that reported its final epoch before the save and errors after the restore
    counts by that report."""
    searcher = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5)
    searcher.suggest("a")
    searcher.on_trial_result("a", {"erank_ratio": 0.7, "epoch": 4, "total_epochs": 5})
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5)
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_complete("a", error=True)
    [estimate] = restored.estimate()
    assert (estimate.n_completed, estimate.n_failed) == (1, 0)
    assert restored._cells[0].observed_y == [0.7]


def test_categories_without_results_take_turns_past_their_designs() -> None:
    """Designs of 2, nothing completed: after the designs neither value has a GP (score 0),
    and the tie goes to the one with fewer trials issued, counting its own pending only."""
    searcher = BoundarySearcher(
        [BETA, TAU], "erank_ratio", 0.5, categories={"n": ["x", "y"]}, initial_design=2
    )
    assert [searcher.suggest(f"t{i}")["n"] for i in range(6)] == ["x", "y"] * 3


def test_failed_trials_count_as_issued_design_points() -> None:
    """x's design of 2 is done after one failed and one finished trial; x, with a single
    result and no GP, then loses to y, whose 2 results give a GP with a positive score."""
    searcher = BoundarySearcher(
        [BETA, TAU], "erank_ratio", 0.5, categories={"n": ["x", "y"]}, initial_design=2
    )
    categories = []
    for number, value in enumerate([float("nan"), 0.2, 0.8, 0.7]):
        categories.append(searcher.suggest(f"t{number}")["n"])
        searcher.on_trial_complete(f"t{number}", {"erank_ratio": value})
    categories.append(searcher.suggest("t4")["n"])
    assert categories == ["x", "y", "x", "y", "y"]


def test_concurrent_design_suggestions_are_different_points() -> None:
    searcher = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5)
    assert searcher.suggest("a") != searcher.suggest("b")


def test_expected_error_with_failures_weights_the_grid_by_the_chance_of_success() -> None:
    """Past log(β + 1) = 3.3 every trial diverges: the expected error counts each grid point
    by success_probability(grid, results, failures), which lowers it below the level set's."""
    searcher = BoundarySearcher([BETA, TAU], "erank_ratio", 0.5, seed=0)
    for number in range(12):
        config = searcher.suggest(f"t{number}")
        diverged = math.log1p(config["loss.beta"]) > 3.3
        value = float("nan") if diverged else phase_2d(config)
        searcher.on_trial_complete(f"t{number}", {"erank_ratio": value})
    [estimate] = searcher.estimate()
    assert estimate.n_failed > 0
    _, grid = unit_grid(2)
    success = success_probability(
        grid,
        np.array(searcher._cells[0].observed_x),
        np.array([unit for _, unit in searcher._failed.values()]),
    )
    wrong_side = estimate.level_set.wrong_side.ravel()
    assert estimate.expected_error == pytest.approx(np.mean(success * wrong_side), rel=1e-12)
    assert estimate.expected_error < estimate.level_set.expected_error


def test_optimizer_restarts_run_every_refit_every_new_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With refit_every=5 the first fit (2 results) and those at 7 and 12 results restart
    the optimizer; the fits in between are warm-started without restarts."""
    restarts: dict[int, int] = {}

    def recording_fit(unit_x: np.ndarray, y: np.ndarray, **kwargs: Any) -> GPRegression:
        restarts[len(y)] = kwargs["n_restarts"]
        return fit_gp_regression(unit_x, y, **kwargs)

    monkeypatch.setattr(boundary_search, "fit_gp_regression", recording_fit)
    searcher = BoundarySearcher([LR], "erank_ratio", 0.5, initial_design=2, refit_every=5)
    run(searcher, phase_1d, 12)
    searcher.estimate()  # the fit on all 12 results
    assert restarts == {count: 2 if count in (2, 7, 12) else 0 for count in range(2, 13)}


def test_candidate_seeds_include_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Space-filling points (no GP yet) and proposals draw their Sobol candidates with seed
    [seed, cell, trials issued], so each step sees fresh candidates."""
    seeds: list[list[int]] = []

    def recording_point(dim: int, avoid: np.ndarray, **kwargs: Any) -> np.ndarray:
        seeds.append(list(kwargs["seed"]))
        return space_filling_point(dim, avoid, **kwargs)

    def recording_propose(gp: GPRegression, threshold: float, **kwargs: Any) -> Any:
        seeds.append(list(kwargs["seed"]))
        return propose(gp, threshold, **kwargs)

    monkeypatch.setattr(boundary_search, "space_filling_point", recording_point)
    monkeypatch.setattr(boundary_search, "propose", recording_propose)
    searcher = BoundarySearcher([LR], "erank_ratio", 0.5, initial_design=2, seed=7)
    for number in range(4):  # the design of 2, then space-filling points (no results yet)
        searcher.suggest(f"p{number}")
    assert seeds == [[7, 0, 2], [7, 0, 3]]
    for number, value in enumerate([0.2, 0.4, 0.6, 0.8]):
        searcher.on_trial_complete(f"p{number}", {"erank_ratio": value})
    seeds.clear()
    run(searcher, phase_1d, 2, start=4)  # GP proposals
    assert seeds == [[7, 0, 4], [7, 0, 5]]


def test_failures_that_rule_out_the_rest_of_the_design_end_the_search() -> None:
    searcher = failure_covered_searcher()
    assert searcher.suggest("t3") == Searcher.FINISHED
    assert searcher.finished


def test_a_category_whose_design_is_ruled_out_stops_and_the_other_goes_on() -> None:
    """x's third design point fails and its zone (radius 0.7) covers x's line; y, whose
    trials all succeed, keeps getting trials."""
    searcher = BoundarySearcher(
        [LR],
        "erank_ratio",
        0.5,
        categories={"n": ["x", "y"]},
        initial_design=4,
        failure_radius=0.7,
    )
    x_values = iter([0.3, 0.4, float("nan")])
    categories = []
    for number in range(12):
        config = searcher.suggest(f"t{number}")
        assert isinstance(config, dict)
        categories.append(config["n"])
        value = next(x_values) if config["n"] == "x" else phase_1d(config)
        searcher.on_trial_complete(f"t{number}", {"erank_ratio": value})
    assert categories[:6] == ["x", "y"] * 3
    assert categories[6:] == ["y"] * 6
    assert searcher._cells[0].exhausted and not searcher.finished
