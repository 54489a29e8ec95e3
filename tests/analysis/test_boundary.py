"""Phase-boundary estimation from trial tables with a known boundary.

Truth: NC iff log(β + 1) < A + B·τ, with logistic label noise. In unit coordinates
(u = log(β + 1) / log 51, v = (τ − 0.1) / 0.9) that is a straight line.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import RegularGridInterpolator

from analysis.boundary import PhaseBoundary, estimate_level_set, estimate_phase_boundary
from hcl_study.levelset import Axis, from_unit, to_unit, unit_grid

A, B = 1.0, 2.0
LABEL_NOISE = 0.15  # logistic scale, log(β + 1) units
LOG_RANGE = np.log(51.0)
AXES = (Axis("loss.beta", 0.0, 50.0, log=True, offset=1.0), Axis("loss.tau", 0.1, 1.0))
DOMAIN = {"x_range": (0.0, 50.0), "y_range": (0.1, 1.0)}
FAST = {"n_restarts": 0, "resolution": 40}


def trial_table(
    seed: int,
    n: int = 60,
    normalization: str = "sphere",
    shift: float = 0.0,
    tau: float | None = None,
):
    """Random trials over the domain (or at one τ), labelled NC / DC by the noisy true boundary."""
    rng = np.random.default_rng(seed)
    log_beta = rng.uniform(0.0, LOG_RANGE, n)  # (n,)
    tau = rng.uniform(0.1, 1.0, n) if tau is None else np.full(n, tau)  # (n,)
    p_nc = 1.0 / (1.0 + np.exp(-(A + shift + B * tau - log_beta) / LABEL_NOISE))
    nc = rng.random(n) < p_nc
    return pd.DataFrame(
        {
            "loss.beta": np.expm1(log_beta),
            "loss.tau": tau,
            "normalization": normalization,
            "regime": np.where(nc, "NC", "DC"),
            "erank_ratio": 0.5
            + 0.45 * np.tanh((A + shift + B * tau - log_beta) / 0.3)
            + 0.02 * rng.normal(size=n),
        }
    )


def distance_to_truth(natural: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """Unit-coordinate distance of natural points (m, 2) to the true line."""
    unit = to_unit(AXES, natural)  # (m, 2)
    # LOG_RANGE·u − 0.9·B·v − (A + shift + 0.1·B) = 0
    normal = np.array([LOG_RANGE, -0.9 * B])
    return np.abs(unit @ normal - (A + shift + 0.1 * B)) / np.linalg.norm(normal)


def true_line_unit(count: int = 50) -> np.ndarray:
    """Points (count, 2) on the true boundary, unit coordinates."""
    tau = np.linspace(0.1, 1.0, count)
    return to_unit(AXES, np.column_stack([np.expm1(A + B * tau), tau]))


def band_covers_truth(boundary: PhaseBoundary) -> float:
    """Fraction of the true line where lower <= 0.5 <= upper."""
    estimate = boundary.level_set
    ticks = np.linspace(0.0, 1.0, estimate.field.shape[0])
    at_line = true_line_unit()[:, ::-1]  # (m, 2) as (v, u) for (row, column) grids
    lower = RegularGridInterpolator((ticks, ticks), estimate.lower)(at_line)
    upper = RegularGridInterpolator((ticks, ticks), estimate.upper)(at_line)
    return float(np.mean((lower <= 0.5) & (upper >= 0.5)))


def test_contour_recovers_the_true_boundary() -> None:
    [boundary] = estimate_phase_boundary(trial_table(seed=0), **DOMAIN, **FAST)
    assert boundary.ok and boundary.reason == ""
    assert boundary.category == {"normalization": "sphere"}
    assert np.mean(distance_to_truth(np.vstack(boundary.contour))) < 0.1
    assert len(boundary.points) == 60


def test_band_contains_the_truth_for_most_seeds() -> None:
    covered, band_areas = 0, []
    for seed in range(10):
        [boundary] = estimate_phase_boundary(
            trial_table(seed=100 + seed, n=40 + 4 * seed), **DOMAIN, **FAST
        )
        covered += band_covers_truth(boundary) >= 0.9
        band_areas.append(boundary.level_set.band.mean())
    assert covered >= 7
    assert np.median(band_areas) < 0.4  # a strip around the boundary, not the whole domain


def test_single_regime_is_reported_instead_of_a_boundary() -> None:
    table = trial_table(seed=1, n=20).assign(regime="NC")
    [boundary] = estimate_phase_boundary(table, **DOMAIN, **FAST)
    assert boundary.status == "single_regime"
    assert boundary.reason == "single regime (all NC)"
    assert boundary.contour == [] and boundary.level_set is None


def test_no_nc_lists_the_regimes_found() -> None:
    table = trial_table(seed=1, n=10).assign(regime=["DC"] * 7 + ["diverged"] * 3)
    [boundary] = estimate_phase_boundary(table, **DOMAIN, **FAST)
    assert boundary.reason == "single regime (no NC: 7 DC, 3 diverged)"


def test_too_few_trials_is_reported() -> None:
    [boundary] = estimate_phase_boundary(trial_table(seed=2, n=5), **DOMAIN, **FAST)
    assert boundary.status == "too_few_trials"
    assert boundary.reason == "too few trials (5 < 8)"


def test_diverged_trials_count_as_not_nc_and_missing_regimes_are_dropped() -> None:
    table = trial_table(seed=3, n=30)
    table.loc[table.index[:4], "regime"] = "diverged"
    table.loc[table.index[4], "regime"] = None
    [boundary] = estimate_phase_boundary(table, **DOMAIN, **FAST)
    points = boundary.points
    assert len(points) == 29
    assert not points.loc[points["regime"] == "diverged", "nc"].any()


def test_each_normalization_gets_its_own_boundary() -> None:
    table = pd.concat(
        [
            trial_table(seed=4, normalization="sphere"),
            trial_table(seed=5, normalization="none", shift=1.0),
            trial_table(seed=6, n=4, normalization="ball"),
        ]
    )
    by_norm = {b.category["normalization"]: b for b in estimate_phase_boundary(table, **FAST)}
    assert set(by_norm) == {"sphere", "none", "ball"}
    assert by_norm["ball"].status == "too_few_trials"
    sphere = np.vstack(by_norm["sphere"].contour)
    shifted = np.vstack(by_norm["none"].contour)
    assert np.mean(distance_to_truth(sphere)) < 0.1
    assert np.mean(distance_to_truth(shifted, shift=1.0)) < 0.1
    assert np.mean(distance_to_truth(shifted)) > 0.15  # the shift is resolved


def test_missing_by_column_is_an_error() -> None:
    with pytest.raises(KeyError, match="loss.name"):
        estimate_phase_boundary(trial_table(seed=0), by=["loss.name"], **FAST)


def test_level_set_of_the_order_parameter_follows_the_truth() -> None:
    table = trial_table(seed=7, n=60)
    table.loc[table.index[:3], "erank_ratio"] = np.nan  # diverged: kept, not modelled
    [boundary] = estimate_level_set(table, "erank_ratio", 0.5, **DOMAIN, **FAST)
    assert boundary.ok and boundary.quantity == "erank_ratio"
    assert np.mean(distance_to_truth(np.vstack(boundary.contour))) < 0.05
    assert len(boundary.points) == 60
    estimate = boundary.level_set
    assert np.all(estimate.lower <= estimate.field) and np.all(estimate.field <= estimate.upper)
    assert estimate.lower_contour and estimate.upper_contour


def test_level_set_reports_one_sided_data() -> None:
    table = trial_table(seed=8, n=30)
    [boundary] = estimate_level_set(table, "erank_ratio", 2.0, **DOMAIN, **FAST)
    assert boundary.status == "single_regime"
    assert boundary.reason == "single regime (all erank_ratio <= 2)"


@pytest.mark.parametrize("quantity", ["P(NC)", "erank_ratio"])
def test_expected_error_matches_the_actual_disagreement_with_the_truth(quantity: str) -> None:
    """The model's expected wrong-side area, summed over seeds, is within 2× of the actual
    area where its region disagrees with the true one (GP classifier, GP regression)."""
    _, grid = unit_grid(2, FAST["resolution"])
    natural = from_unit(AXES, grid)  # (k*k, 2)
    truth = np.log1p(natural[:, 0]) < A + B * natural[:, 1]  # (k*k,)
    expected, actual = 0.0, 0.0
    for seed in range(8):
        table = trial_table(seed=200 + seed, n=60)
        if quantity == "P(NC)":
            [boundary] = estimate_phase_boundary(table, **DOMAIN, **FAST)
        else:
            [boundary] = estimate_level_set(table, quantity, 0.5, **DOMAIN, **FAST)
        expected += boundary.level_set.expected_error
        actual += np.mean(boundary.level_set.region.ravel() != truth)
    assert 0.5 < actual / expected < 2.0


def test_one_dimensional_boundary_finds_the_crossing_in_beta() -> None:
    """Without y, P(NC | β) = 0.5 is a crossing in β: the truth at τ = 0.5 is log(β + 1) = 2."""
    table = trial_table(seed=9, n=40, tau=0.5)
    [boundary] = estimate_phase_boundary(table, y=None, x_range=(0.0, 50.0), **FAST)
    assert boundary.ok and boundary.axes == ("loss.beta",)
    [crossing] = boundary.contour
    assert crossing.shape == (1, 1)
    assert abs(np.log1p(crossing[0, 0]) - (A + 0.5 * B)) < 0.3
    assert boundary.level_set.field.shape == (FAST["resolution"],)
    assert list(boundary.points.columns) == ["loss.beta", "regime", "nc"]
    [level] = estimate_level_set(table, "erank_ratio", 0.5, y=None, **FAST)
    [crossing] = level.contour
    assert abs(np.log1p(crossing[0, 0]) - (A + 0.5 * B)) < 0.05


def test_min_trials_default_is_four_per_axis() -> None:
    table = trial_table(seed=2, n=3)
    [one_d] = estimate_phase_boundary(table, y=None, **FAST)
    assert one_d.reason == "too few trials (3 < 4)"
    [two_d] = estimate_phase_boundary(table, **DOMAIN, **FAST)
    assert two_d.reason == "too few trials (3 < 8)"
    [level] = estimate_level_set(table, "erank_ratio", 0.5, y=None, **FAST)
    assert level.reason == "too few finite erank_ratio values (3 < 4)"


def test_pooled_names_the_varied_params_that_are_neither_axes_nor_categories() -> None:
    table = pd.concat(
        [trial_table(seed=10, n=20), trial_table(seed=11, n=20, normalization="ball")]
    ).assign(**{"optimizer.lr": [1e-3, 1e-2] * 20, "seed": 0})
    params = ("loss.beta", "loss.tau", "normalization", "optimizer.lr", "seed", "epochs")
    sphere_only = table["normalization"] == "sphere"
    table.loc[sphere_only, "seed"] = np.arange(sphere_only.sum())  # seeds vary in sphere only
    boundaries = estimate_phase_boundary(table, params=params, **DOMAIN, **FAST)
    assert {b.category["normalization"]: b.pooled for b in boundaries} == {
        "ball": ("optimizer.lr",),
        "sphere": ("optimizer.lr", "seed"),
    }
    [one_d, _] = estimate_phase_boundary(table, y=None, params=params, **FAST)
    assert one_d.pooled == ("loss.tau", "optimizer.lr"), "τ is pooled once it is no axis"
    assert all(b.pooled is None for b in estimate_phase_boundary(table, **DOMAIN, **FAST))
    [level, _] = estimate_level_set(table, "erank_ratio", 0.5, params=params, **DOMAIN, **FAST)
    assert level.pooled == ("optimizer.lr",)


def test_partial_trials_count_as_not_nc() -> None:
    """'partial' is neither NC nor DC: with no NC trial the category is one regime."""
    table = trial_table(seed=12, n=10).assign(regime=["partial"] * 6 + ["DC"] * 4)
    [boundary] = estimate_phase_boundary(table, **DOMAIN, **FAST)
    assert boundary.reason == "single regime (no NC: 6 partial, 4 DC)"
    assert not boundary.points["nc"].any()


def test_min_trials_itself_is_enough() -> None:
    """4 trials in 1-D (the default minimum) are modelled, not refused as too few."""
    table = trial_table(seed=2, n=4, tau=0.5)
    [phase] = estimate_phase_boundary(table, y=None, **FAST)
    [level] = estimate_level_set(table, "erank_ratio", 0.5, y=None, **FAST)
    assert phase.status != "too_few_trials" and level.status != "too_few_trials"
    [explicit] = estimate_phase_boundary(table, y=None, min_trials=5, **FAST)
    assert explicit.reason == "too few trials (4 < 5)"


def test_trials_that_did_not_run_to_their_end_or_lack_an_axis_value_are_left_out() -> None:
    """A failed, killed, stopped or running trial (no final regime) has no order parameter
    yet, and a trial without an axis value has no place: neither changes the estimates, even
    with values opposite to the truth."""
    table = trial_table(seed=13, n=40).assign(**{"optimizer.lr": 1e-3})
    unfinished = trial_table(seed=14, n=12).assign(regime=None, **{"optimizer.lr": 1e-2})
    unfinished["erank_ratio"] = 1.0 - unfinished["erank_ratio"]
    unplaced = trial_table(seed=15, n=2).assign(**{"loss.tau": np.nan, "optimizer.lr": 1e-3})
    polluted = pd.concat([table, unfinished, unplaced], ignore_index=True)
    params = ("optimizer.lr",)
    for estimate in (
        lambda t: estimate_phase_boundary(t, params=params, **DOMAIN, **FAST),
        lambda t: estimate_level_set(t, "erank_ratio", 0.5, params=params, **DOMAIN, **FAST),
    ):
        [clean], [kept] = estimate(table), estimate(polluted)
        assert clean.ok and kept.ok and len(kept.points) == len(table)
        np.testing.assert_array_equal(kept.level_set.field, clean.level_set.field)
        assert kept.pooled == (), "lr varies only among the trials left out"


def one_axis_table(values: list[float]) -> pd.DataFrame:
    """Trials at β = 0, 1, 2, …, all sphere, with these erank ratios."""
    return pd.DataFrame(
        {
            "loss.beta": np.arange(len(values), dtype=float),
            "normalization": "sphere",
            "erank_ratio": values,
        }
    )


def test_min_trials_counts_only_the_finite_values() -> None:
    table = one_axis_table([0.2, 0.4, np.nan, 0.6, np.nan])  # 3 finite of 5, 1-D needs 4
    [boundary] = estimate_level_set(table, "erank_ratio", 0.5, y=None, **FAST)
    assert boundary.status == "too_few_trials"
    assert boundary.reason == "too few finite erank_ratio values (3 < 4)"


def test_a_fitted_field_that_never_reaches_the_level_is_no_crossing() -> None:
    from analysis.boundary import _checked
    from hcl_study.levelset import level_set

    field = np.linspace(0.2, 0.45, 11)  # below 0.5 everywhere
    below = level_set([AXES[0]], field, field - 0.1, field + 0.1, 0.5, np.zeros(11))
    fitted = PhaseBoundary(
        {}, ("loss.beta",), "erank_ratio", 0.5, "ok", "", pd.DataFrame(), below, None
    )
    checked = _checked(fitted)
    assert checked.status == "no_crossing" and not checked.contour
    assert checked.reason == "erank_ratio does not cross 0.5 inside the domain"
    crossing = level_set([AXES[0]], field + 0.2, field, field + 0.3, 0.5, np.zeros(11))
    assert _checked(replace(fitted, level_set=crossing)).status == "ok"


def test_the_default_domain_spans_the_trials() -> None:
    [boundary] = estimate_level_set(
        one_axis_table([0.2, 0.3, 0.4, 0.6, 0.7, 0.8]), "erank_ratio", 0.5, y=None, **FAST
    )
    assert boundary.ok
    (ticks,) = boundary.level_set.ticks
    assert (ticks[0], ticks[-1]) == pytest.approx((0.0, 5.0))
