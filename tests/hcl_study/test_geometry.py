"""Geometry metrics: hand-built geometries, closed forms and naive recomputation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hcl_study.geometry import (
    METRIC_KEYS,
    GeometryAccumulator,
    classify_regime,
    compute_geometry,
    ncm_accuracy,
)


def simplex_etf(num_classes: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-norm simplex ETF vertices, randomly rotated into R^dim, shape (C, d)."""
    centring = np.eye(num_classes) - 1.0 / num_classes  # (C, C)
    basis = np.linalg.svd(centring)[0][:, : num_classes - 1]  # (C, C-1), spans 1-perp
    embedding = np.linalg.qr(rng.normal(size=(dim, num_classes - 1)))[0].T  # (C-1, d)
    return math.sqrt(num_classes / (num_classes - 1)) * basis @ embedding


def around_means(
    means: np.ndarray, pairs: int, noise_norm: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Samples mu_c +- e with ||e|| = noise_norm, so class means are exactly `means`."""
    num_classes, dim = means.shape
    directions = rng.normal(size=(num_classes, pairs, dim))
    noise = noise_norm * directions / np.linalg.norm(directions, axis=2, keepdims=True)
    samples = np.concatenate([means[:, None] + noise, means[:, None] - noise], axis=1)
    labels = np.repeat(np.arange(num_classes), 2 * pairs)
    return samples.reshape(-1, dim), labels


def scalar_metrics(metrics: dict) -> np.ndarray:
    return np.array([metrics[key] for key in METRIC_KEYS])


def test_simplex_etf_has_every_collapse_metric_near_zero() -> None:
    rng = np.random.default_rng(0)
    z, labels = around_means(simplex_etf(10, 12, rng), pairs=4, noise_norm=1e-3, rng=rng)
    metrics = compute_geometry(z, labels, 10)
    for key in ("unit_norm", "zero_sum", "equal_inner_mean", "equal_inner_max", "equinorm"):
        assert metrics[key] < 1e-12, key
    assert metrics["etf_distance"] < 1e-12
    assert metrics["within_class"] == pytest.approx(1e-3, rel=1e-9)
    assert metrics["within_rel"] == pytest.approx(1e-3, rel=1e-9)  # mean ||mu_c - mu_G|| = 1
    assert 0 < metrics["nc1"] < 1e-5
    assert metrics["erank_means"] == pytest.approx(9.0, rel=1e-9)
    assert metrics["erank_ratio"] == pytest.approx(1.0, rel=1e-9)
    assert metrics["rank_bound"] == 9 and metrics["dc_count"] == 0
    np.testing.assert_allclose(metrics["spectrum"], np.ones(9), rtol=1e-9)
    assert metrics["ncm_accuracy"] == 1.0
    assert classify_regime(metrics) == "NC"


@pytest.mark.parametrize("subspace_dim", [1, 3, 6])
def test_means_in_a_subspace_count_the_collapsed_dimensions(subspace_dim: int) -> None:
    rng = np.random.default_rng(subspace_dim)
    basis = np.linalg.qr(rng.normal(size=(12, subspace_dim)))[0].T  # (k, d)
    means = rng.normal(size=(10, subspace_dim)) @ basis  # (C, d)
    z, labels = around_means(means, pairs=2, noise_norm=1e-2, rng=rng)
    metrics = compute_geometry(z, labels, 10)
    assert metrics["rank_bound"] == 9
    assert metrics["dc_count"] == 9 - subspace_dim
    assert metrics["dc_fraction"] == pytest.approx((9 - subspace_dim) / 9)
    assert metrics["erank_means"] <= subspace_dim + 1e-9
    assert np.all(metrics["spectrum"][subspace_dim:] < 1e-20)
    # Sigma_B has rank k: nc1 inverts only those k directions (round-off ones would explode).
    centred = means - means.mean(axis=0)
    within = np.mean([np.cov(z[labels == c].T, bias=True) for c in range(10)], axis=0)
    between_pinv = np.linalg.pinv(centred.T @ centred / 10, rcond=1e-8, hermitian=True)
    assert metrics["nc1"] == pytest.approx(np.trace(within @ between_pinv) / 10, rel=1e-6)
    assert classify_regime(metrics) == "DC"


def test_tiny_case_matches_hand_computation() -> None:
    z = np.array([[1, 0], [3, 0], [0, 2], [0, 4], [-2, 2], [-2, -4]], dtype=np.float64)
    labels = np.array([0, 0, 1, 1, 2, 2])
    metrics = compute_geometry(z, labels, 3)
    # Means (2, 0), (0, 3), (-2, -1); deviations 1, 1, 3; mu_G = (0, 2/3).
    assert metrics["within_class"] == pytest.approx(5 / 3)
    # Sigma_W = diag(1/3, 10/3), Sigma_B = [[8/3, 2/3], [2/3, 26/9]] -> tr(W B^-1)/3 = 19/42.
    assert metrics["nc1"] == pytest.approx(19 / 42)
    assert metrics["unit_norm"] == pytest.approx((2 + math.sqrt(5)) / 3)
    assert metrics["zero_sum"] == pytest.approx(2 / 3)
    centred_norms = np.array([math.sqrt(40) / 3, 7 / 3, math.sqrt(61) / 3])
    assert metrics["within_rel"] == pytest.approx((5 / 3) / centred_norms.mean())
    assert metrics["equinorm"] == pytest.approx(centred_norms.std() / centred_norms.mean())
    centred = np.array([[2, -2 / 3], [0, 7 / 3], [-2, -5 / 3]])
    gram = centred @ centred.T
    simplex = np.eye(3) - 1 / 3
    expected_etf = np.linalg.norm(gram / np.linalg.norm(gram) - simplex / np.linalg.norm(simplex))
    assert metrics["etf_distance"] == pytest.approx(expected_etf)
    assert metrics["log_etf_distance"] == pytest.approx(math.log10(expected_etf))
    means = np.array([[2, 0], [0, 3], [-2, -1]], dtype=np.float64)
    cosines = [
        abs(means[a] @ means[b] / np.linalg.norm(means[a]) / np.linalg.norm(means[b]) + 0.5)
        for a in range(3)
        for b in range(3)
        if a != b
    ]
    assert metrics["equal_inner_mean"] == pytest.approx(np.mean(cosines))
    assert metrics["equal_inner_max"] == pytest.approx(max(cosines))
    # (-2, 2) is sqrt(5) from class 1's mean but 3 from its own: 5 of 6 correct.
    assert metrics["ncm_accuracy"] == pytest.approx(5 / 6)
    assert ncm_accuracy(z, labels, means) == pytest.approx(5 / 6)


def test_ncm_accuracy_is_independent_of_chunking_and_accepts_torch() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(101, 4))
    labels = rng.integers(0, 5, size=101)
    means = rng.normal(size=(5, 4))
    naive = np.mean(np.argmin(np.linalg.norm(z[:, None] - means[None], axis=2), axis=1) == labels)
    assert ncm_accuracy(z, labels, means) == pytest.approx(naive)
    assert ncm_accuracy(z, labels, means, chunk_size=7) == pytest.approx(naive)
    tensors = (torch.from_numpy(z), torch.from_numpy(labels), torch.from_numpy(means))
    assert ncm_accuracy(*tensors) == pytest.approx(naive)


def test_rankme_matches_the_formula_on_the_svd_of_z() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(300, 8)) * np.array([5.0, 3.0, 1.0, 1.0, 0.5, 0.1, 0.01, 1e-3])
    labels = rng.integers(0, 4, size=300)
    singular_values = np.linalg.svd(z, compute_uv=False)
    weights = singular_values / singular_values.sum() + 1e-7
    expected = math.exp(-np.sum(weights * np.log(weights)))
    assert compute_geometry(z, labels, 4)["erank_features"] == pytest.approx(expected, rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    first_cuts=st.lists(st.integers(0, 60), max_size=6),
    second_cuts=st.lists(st.integers(0, 60), max_size=6),
    seed=st.integers(0, 2**16),
)
def test_streaming_over_uneven_batches_equals_one_shot(
    first_cuts: list[int], second_cuts: list[int], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(60, 5)) + rng.normal(size=(4, 5))[np.arange(60) % 4]
    labels = np.arange(60) % 4
    one_shot = compute_geometry(z, labels, 4)
    accumulator = GeometryAccumulator(4, 5)
    for part in np.split(np.arange(60), sorted(first_cuts)):
        accumulator.update(z[part], labels[part])
    for part in np.split(rng.permutation(60), sorted(second_cuts)):
        accumulator.update_within(z[part], labels[part])
    streamed = accumulator.compute()
    np.testing.assert_allclose(scalar_metrics(streamed), scalar_metrics(one_shot), rtol=1e-9)
    np.testing.assert_allclose(streamed["spectrum"], one_shot["spectrum"], rtol=1e-9)


def test_torch_batches_give_the_numpy_result() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(40, 3)).astype(np.float32)
    labels = np.arange(40) % 4
    from_numpy = compute_geometry(z, labels, 4, batch_size=16)
    from_torch = compute_geometry(torch.from_numpy(z), torch.from_numpy(labels), 4, batch_size=9)
    np.testing.assert_allclose(scalar_metrics(from_torch), scalar_metrics(from_numpy), rtol=1e-9)


def test_large_offset_keeps_within_class_statistics_exact() -> None:
    rng = np.random.default_rng(4)
    means = simplex_etf(5, 6, rng)
    z = means[np.arange(400) % 5] + 1e-3 * rng.normal(size=(400, 6))
    labels = np.arange(400) % 5
    reference = compute_geometry(z, labels, 5)
    shifted = compute_geometry(z + 1e4, labels, 5, batch_size=64)
    # Naive per-class recomputation on the unshifted data.
    deviations = [z[labels == c] - z[labels == c].mean(axis=0) for c in range(5)]
    naive_within = np.mean([np.linalg.norm(d, axis=1).mean() for d in deviations])
    assert shifted["within_class"] == pytest.approx(naive_within, rel=1e-6)
    for key in ("within_class", "within_rel", "nc1", "equinorm", "etf_distance", "erank_means"):
        assert shifted[key] == pytest.approx(reference[key], rel=1e-6), key
    assert shifted["ncm_accuracy"] == reference["ncm_accuracy"] == 1.0


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_input_gives_nan_metrics_and_diverged(bad_value: float) -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(30, 4))
    z[7, 2] = bad_value
    metrics = compute_geometry(z, np.arange(30) % 3, 3)
    undefined = [key for key in METRIC_KEYS if key not in ("rank_bound", "num_classes_present")]
    assert all(math.isnan(metrics[key]) for key in undefined)
    assert np.isnan(metrics["spectrum"]).all() and len(metrics["spectrum"]) == 2
    assert classify_regime(metrics) == "diverged"


def test_missing_class_uses_present_classes_and_pads_the_spectrum() -> None:
    rng = np.random.default_rng(6)
    z = rng.normal(size=(80, 6)) + 3 * rng.normal(size=(4, 6))[np.arange(80) % 4]
    compact_labels = np.arange(80) % 4
    labels_with_gap = np.array([0, 1, 2, 4])[compact_labels]  # class 3 of 5 is absent
    compact = compute_geometry(z, compact_labels, 4)
    with_gap = compute_geometry(z, labels_with_gap, 5)
    np.testing.assert_allclose(scalar_metrics(with_gap), scalar_metrics(compact), rtol=1e-12)
    assert with_gap["num_classes_present"] == 4 and with_gap["rank_bound"] == 3
    np.testing.assert_allclose(with_gap["spectrum"], np.append(compact["spectrum"], 0.0))

    accumulator = GeometryAccumulator(5, 6)
    accumulator.update(z, labels_with_gap)
    assert np.isnan(accumulator.class_means()[3]).all()
    assert ncm_accuracy(z, labels_with_gap, accumulator.class_means()) == pytest.approx(
        compact["ncm_accuracy"]
    )


def test_fewer_than_two_classes_present_is_an_error() -> None:
    z = np.random.default_rng(7).normal(size=(10, 3))
    with pytest.raises(ValueError, match="at least 2 classes"):
        compute_geometry(z, np.full(10, 2), 4)


def test_accumulator_enforces_the_two_pass_protocol() -> None:
    z = np.random.default_rng(8).normal(size=(12, 3))
    labels = np.arange(12) % 3
    accumulator = GeometryAccumulator(3, 3)
    accumulator.update(z, labels)
    with pytest.raises(RuntimeError, match="second pass"):
        accumulator.compute()
    accumulator.update_within(z[:6], labels[:6])
    with pytest.raises(RuntimeError, match="first pass is closed"):
        accumulator.update(z, labels)
    with pytest.raises(RuntimeError, match="second pass"):
        accumulator.compute()
    accumulator.update_within(z[6:], labels[6:])
    assert set(accumulator.compute()) == {*METRIC_KEYS, "spectrum"}


def test_bad_labels_are_rejected() -> None:
    accumulator = GeometryAccumulator(3, 2)
    with pytest.raises(ValueError, match="labels must lie in"):
        accumulator.update(np.zeros((2, 2)), np.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        accumulator.update(np.zeros((2, 3)), np.array([0, 1]))


def means_with_singular_values(singular_values: tuple[float, float, float]) -> np.ndarray:
    """Means (4, 3) = U diag(s) with U's columns orthonormal and orthogonal to 1 (centred)."""
    hadamard = 0.5 * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64)
    return hadamard * np.array(singular_values)


def test_exactly_zero_singular_values_of_the_means_are_collapsed_not_diverged() -> None:
    """0 log 0 = 0 in erank_means: axis-aligned rank-1 means give erank 1 and regime DC."""
    means = np.array([[1, 1, 0], [2, 1, 0], [3, 1, 0], [4, 1, 0]], dtype=np.float64)
    noise = np.array([0.0, 0.0, 0.25])  # +-noise keeps the means (hence the zeros) exact
    z = np.concatenate([means + noise, means - noise])
    metrics = compute_geometry(z, np.tile(np.arange(4), 2), 4)
    assert metrics["erank_means"] == pytest.approx(1.0, rel=1e-12)
    assert metrics["rank_bound"] == 3 and metrics["dc_count"] == 2
    np.testing.assert_array_equal(metrics["spectrum"], [1.0, 0.0, 0.0])
    assert classify_regime(metrics) == "DC"


def test_constant_encoder_gives_nan_metrics_without_raising() -> None:
    """All features at one point: every class mean coincides, so NaN metrics and diverged."""
    metrics = compute_geometry(np.full((12, 3), 0.7), np.arange(12) % 4, 4)
    undefined = [key for key in METRIC_KEYS if key not in ("rank_bound", "num_classes_present")]
    assert all(math.isnan(metrics[key]) for key in undefined)
    assert metrics["rank_bound"] == 3 and metrics["num_classes_present"] == 4
    assert np.isnan(metrics["spectrum"]).all() and len(metrics["spectrum"]) == 3
    assert classify_regime(metrics) == "diverged"


def test_rank_deficient_features_give_a_finite_rankme() -> None:
    """Features of rank 2 in d=10 (round-off eigenvalues of Z^T Z < 0): RankMe of Z's SVD."""
    rng = np.random.default_rng(9)
    z = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 10))  # (N, d), rank 2
    singular_values = np.linalg.svd(z, compute_uv=False)
    weights = singular_values / singular_values.sum() + 1e-7
    expected = math.exp(-np.sum(weights * np.log(weights)))
    # sqrt(eig(Z^T Z)) resolves the zero singular values only to ~1e-7 of the largest.
    metrics = compute_geometry(z, np.arange(50) % 5, 5)
    assert metrics["erank_features"] == pytest.approx(expected, rel=1e-6)


def test_within_class_averages_over_classes_not_samples() -> None:
    """Unequal class sizes: within_class is the mean of the per-class mean deviations."""
    z = np.array(
        [[-1, 4], [1, 4], [7, 4], [13, 4], [10, 7], [10, 1]], dtype=np.float64
    )  # class 0: mean (0, 4), deviations 1; class 1: mean (10, 4), deviations 3
    metrics = compute_geometry(z, np.array([0, 0, 1, 1, 1, 1]), 2)
    assert metrics["within_class"] == pytest.approx((1 + 3) / 2)  # per sample: 14/6
    assert metrics["within_rel"] == pytest.approx(2 / 5)


def test_erank_means_uses_the_singular_values_of_the_centred_means() -> None:
    """Centred means with singular values (3, 2, 1): erank_means = exp(H(s / sum s))."""
    means = means_with_singular_values((3.0, 2.0, 1.0))
    metrics = compute_geometry(means, np.arange(4), 4)
    weights = np.array([3.0, 2.0, 1.0]) / 6.0
    expected = math.exp(-np.sum(weights * np.log(weights)))
    assert metrics["erank_means"] == pytest.approx(expected, rel=1e-12)
    assert metrics["erank_ratio"] == pytest.approx(expected / 3, rel=1e-12)


def test_dc_count_threshold_is_one_thousandth_of_the_largest_eigenvalue() -> None:
    """Spectrum (1, 5e-3, 5e-4): only 5e-4 is below 1e-3, so one collapsed dimension."""
    means = means_with_singular_values((1.0, math.sqrt(5e-3), math.sqrt(5e-4)))
    metrics = compute_geometry(means, np.arange(4), 4)
    np.testing.assert_allclose(metrics["spectrum"], [1.0, 5e-3, 5e-4], rtol=1e-9)
    assert metrics["dc_count"] == 1
    assert metrics["dc_fraction"] == pytest.approx(1 / 3)


def test_ncm_accuracy_counts_a_non_finite_sample_as_wrong() -> None:
    """A NaN sample labelled 0 (the argmin of an all-NaN row) is misclassified."""
    z = np.array([[np.nan, np.nan], [1.0, 1.0]])
    means = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert ncm_accuracy(z, np.array([0, 1]), means) == 0.5


def test_ncm_accuracy_is_exact_under_a_huge_common_offset() -> None:
    """Means 1 apart at offset 1e8 (||m||^2 ~ 1e16, ulp 4): samples 0.4 off are all correct."""
    means = np.array([[1e8, 1e8], [1e8 + 1, 1e8]])
    steps = np.array([[0.4, 0], [-0.4, 0], [0, 0.4], [0, -0.4]])
    z = np.concatenate([means[0] + steps, means[1] + steps])
    labels = np.repeat([0, 1], 4)
    assert ncm_accuracy(z, labels, means) == 1.0
    assert compute_geometry(z, labels, 2)["ncm_accuracy"] == 1.0


def test_the_global_mean_weighs_every_class_alike_whatever_its_size() -> None:
    """Means (1, 0), (0, 1), (-1, 0), the last of two samples: mu_G = (0, 1/3), not the
    sample mean (-1/4, 1/4)."""
    z = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-1.0, 0.0]])
    metrics = compute_geometry(z, np.array([0, 1, 2, 2]), 3)
    assert metrics["zero_sum"] == pytest.approx(1 / 3)


def test_erank_ratio_is_relative_to_the_rank_the_dimension_allows() -> None:
    """d = 2 < C - 1 = 3: means ±e1, ±e2 span both dimensions equally, erank 2 of 2."""
    z = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    metrics = compute_geometry(z, np.arange(4), 4)
    assert metrics["rank_bound"] == 2
    assert metrics["erank_means"] == pytest.approx(2.0)
    assert metrics["erank_ratio"] == pytest.approx(1.0)
    assert metrics["dc_fraction"] == 0.0


def test_unit_norm_averages_the_distances_of_the_mean_norms_from_one() -> None:
    metrics = compute_geometry(np.array([[0.5, 0.0], [0.0, 1.5]]), np.array([0, 1]), 2)
    assert metrics["unit_norm"] == pytest.approx(0.5)  # |0.5 - 1| and |1.5 - 1|


def test_an_exact_simplex_etf_has_a_finite_log_etf_distance() -> None:
    from hcl_study.geometry.metrics import ETF_DISTANCE_FLOOR

    metrics = compute_geometry(np.array([[1.0], [-1.0]]), np.array([0, 1]), 2)
    assert metrics["etf_distance"] == 0.0
    assert metrics["log_etf_distance"] == math.log10(ETF_DISTANCE_FLOOR)


def test_a_class_mean_with_a_non_finite_coordinate_is_no_candidate() -> None:
    means = np.array([[0.0, 0.0], [np.nan, 5.0], [10.0, 10.0]])
    assert ncm_accuracy(np.array([[10.0, 10.0], [0.5, 0.0]]), np.array([2, 0]), means) == 1.0


def test_the_second_pass_refuses_a_class_the_first_never_saw() -> None:
    accumulator = GeometryAccumulator(2, 2)
    accumulator.update(np.array([[1.0, 0.0]]), np.array([0]))
    with pytest.raises(ValueError, match="never saw"):
        accumulator.update_within(np.array([[0.0, 1.0]]), np.array([1]))
