"""Regime classification: boundary behaviour of every threshold, on metrics and geometries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hcl_study.geometry import METRIC_KEYS, REGIME_CODES, classify_regime, compute_geometry


def metrics_with(**overrides: float) -> dict:
    """A clean NC metrics dict (r = 9) with some values replaced."""
    metrics = {
        "rank_bound": 9.0,
        "dc_count": 0.0,
        "erank_means": 9.0,
        "etf_distance": 0.01,
        "within_rel": 0.01,
        "equal_inner_max": 0.01,
        "spectrum": np.ones(9),
    }
    return metrics | overrides


def geometry_with_singular_values(
    singular_values: np.ndarray, num_classes: int, dim: int, noise_norm: float
) -> dict:
    """Metrics of class means M~ = U diag(s) V^T (U orthogonal to 1), +-noise pairs around them."""
    rng = np.random.default_rng(len(singular_values))
    centring = np.eye(num_classes) - 1.0 / num_classes
    left = np.linalg.svd(centring)[0][:, : len(singular_values)]  # (C, k), columns sum to 0
    right = np.linalg.qr(rng.normal(size=(dim, len(singular_values))))[0].T  # (k, d)
    means = left @ np.diag(singular_values) @ right  # (C, d)
    noise = rng.normal(size=(num_classes, dim))
    noise *= noise_norm / np.linalg.norm(noise, axis=1, keepdims=True)
    z = np.concatenate([means + noise, means - noise])
    labels = np.tile(np.arange(num_classes), 2)
    return compute_geometry(z, labels, num_classes)


def test_regime_codes_are_fixed() -> None:
    assert REGIME_CODES == {"NC": 0, "partial": 1, "DC": 2, "diverged": 3}


def test_clean_metrics_are_nc_and_each_nc_threshold_flips_to_partial() -> None:
    assert classify_regime(metrics_with()) == "NC"
    for key in ("etf_distance", "within_rel"):
        assert classify_regime(metrics_with(**{key: 0.149})) == "NC"
        assert classify_regime(metrics_with(**{key: 0.151})) == "partial"
    assert classify_regime(metrics_with(equal_inner_max=0.199)) == "NC"
    assert classify_regime(metrics_with(equal_inner_max=0.201)) == "partial"


def test_custom_thresholds_are_honoured() -> None:
    metrics = metrics_with(etf_distance=0.1, within_rel=0.1, equal_inner_max=0.1)
    assert classify_regime(metrics) == "NC"
    assert classify_regime(metrics, etf_threshold=0.09) == "partial"
    assert classify_regime(metrics, within_rel_threshold=0.09) == "partial"
    assert classify_regime(metrics, equal_inner_threshold=0.09) == "partial"
    assert classify_regime(metrics_with(erank_means=8.0), erank_fraction=0.9) == "DC"
    assert classify_regime(metrics_with(dc_count=1.0), dc_count_fraction=0.2) == "NC"


def test_dc_rules_take_precedence_and_flip_at_their_bounds() -> None:
    # r = 9: 0.1 r < 1, so a single collapsed dimension is DC; erank below 0.8 r = 7.2 is DC.
    assert classify_regime(metrics_with(dc_count=1.0)) == "DC"
    assert classify_regime(metrics_with(erank_means=7.21)) == "NC"
    assert classify_regime(metrics_with(erank_means=7.19)) == "DC"
    # exactly 0.8 r is not below it
    ten = {"rank_bound": 10.0, "spectrum": np.ones(10)}
    assert classify_regime(metrics_with(**ten, erank_means=8.0)) == "NC"
    # r = 40: needs dc_count >= 4.
    wide = {"rank_bound": 40.0, "erank_means": 40.0, "spectrum": np.ones(40)}
    assert classify_regime(metrics_with(**wide, dc_count=3.0)) == "NC"
    assert classify_regime(metrics_with(**wide, dc_count=4.0)) == "DC"


@pytest.mark.parametrize("key", ["dc_count", "erank_means", "etf_distance", "within_rel"])
def test_any_non_finite_read_value_is_diverged(key: str) -> None:
    assert classify_regime(metrics_with(**{key: math.nan})) == "diverged"
    assert classify_regime(metrics_with(**{key: math.inf})) == "diverged"


def test_non_finite_spectrum_is_diverged_and_spectrum_is_optional() -> None:
    spectrum = np.ones(9)
    spectrum[4] = np.nan
    assert classify_regime(metrics_with(spectrum=spectrum)) == "diverged"
    without_spectrum = {key: value for key, value in metrics_with().items() if key != "spectrum"}
    assert classify_regime(without_spectrum) == "NC"


@pytest.mark.parametrize(("noise_norm", "regime"), [(0.14, "NC"), (0.16, "partial")])
def test_within_class_spread_around_an_etf_flips_at_the_threshold(
    noise_norm: float, regime: str
) -> None:
    # Unit-norm ETF (singular values sqrt(C/(C-1))): within_rel equals the noise norm exactly.
    metrics = geometry_with_singular_values(np.full(9, math.sqrt(10 / 9)), 10, 12, noise_norm)
    assert metrics["within_rel"] == pytest.approx(noise_norm, rel=1e-9)
    assert metrics["etf_distance"] < 1e-12
    assert classify_regime(metrics) == regime


@pytest.mark.parametrize(("kept_dims", "regime"), [(19, "partial"), (18, "DC")])
def test_collapsed_dimensions_flip_at_a_tenth_of_the_rank(kept_dims: int, regime: str) -> None:
    # C = 21, d = 20: r = 20, so DC needs dc_count >= 2; equal kept values keep erank = kept_dims.
    metrics = geometry_with_singular_values(np.ones(kept_dims), 21, 20, noise_norm=1e-3)
    assert metrics["dc_count"] == 20 - kept_dims
    assert metrics["erank_means"] == pytest.approx(kept_dims, rel=1e-9)
    assert classify_regime(metrics) == regime


def test_metric_keys_are_the_scalar_outputs() -> None:
    metrics = geometry_with_singular_values(np.ones(3), 4, 5, noise_norm=0.1)
    assert set(metrics) == {*METRIC_KEYS, "spectrum"}
    assert all(isinstance(metrics[key], float) for key in METRIC_KEYS)
