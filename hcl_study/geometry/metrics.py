"""Neural-collapse and dimensional-collapse metrics from per-class statistics.

Notation: the C_eff classes that have samples are the only ones used; mu_c are their means,
mu_G = mean_c mu_c (unweighted), and the centred means M~ (C_eff, d) have rows mu_c - mu_G.
With C the nominal number of classes and d the feature dimension, the rank bound is
r = min(d, C_eff - 1) and the `spectrum` array always has length min(d, C - 1): its first r
entries are the normalised eigenvalues and the rest (one per absent class, up to d) are zero
padding that no metric counts. All scalars are Python floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

METRIC_KEYS: tuple[str, ...] = (
    "within_class",
    "within_rel",
    "nc1",
    "unit_norm",
    "equinorm",
    "zero_sum",
    "equal_inner_mean",
    "equal_inner_max",
    "etf_distance",
    "dc_count",
    "erank_means",
    "erank_features",
    "ncm_accuracy",
    "rank_bound",
    "erank_ratio",
    "log_etf_distance",
    "dc_fraction",
    "num_classes_present",
)

PINV_RELATIVE_TOLERANCE = 1e-10
"""Sigma_B eigenvalues at or below this fraction of the largest are not inverted."""
DC_RELATIVE_THRESHOLD = 1e-3
"""A spectrum entry (eigenvalue / largest) below this counts as a collapsed dimension."""
RANKME_EPSILON = 1e-7
"""Added to each normalised singular value in RankMe, as in the RankMe paper."""
ETF_DISTANCE_FLOOR = 1e-12
"""etf_distance is clipped at this value before taking log10."""


@dataclass(frozen=True)
class ClassStatistics:
    """Everything the metrics need, accumulated exactly over all N samples.

    Attributes:
        counts: Samples per class, shape (C,).
        means: Class means mu_c, shape (C, d); rows of absent classes are ignored.
        within_norm_sums: Per class, sum_i ||z_i - mu_c||, shape (C,).
        within_scatter: sum_c (1/n_c) sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T, shape (d, d),
            so that Sigma_W = within_scatter / C_eff.
        gram: Z^T Z of the raw features, shape (d, d).
        ncm_correct: Samples whose nearest class mean is their own.
    """

    counts: np.ndarray
    means: np.ndarray
    within_norm_sums: np.ndarray
    within_scatter: np.ndarray
    gram: np.ndarray
    ncm_correct: int


def effective_rank(singular_values: np.ndarray) -> float:
    """exp of the Shannon entropy of the singular values normalised to sum 1 (0 log 0 = 0)."""
    weights = singular_values / singular_values.sum()
    weights = weights[weights > 0]
    return float(np.exp(-np.sum(weights * np.log(weights))))


def rankme(singular_values: np.ndarray) -> float:
    """RankMe: exp(-sum p log p) with p_i = sigma_i / sum(sigma) + RANKME_EPSILON."""
    weights = singular_values / singular_values.sum() + RANKME_EPSILON
    return float(np.exp(-np.sum(weights * np.log(weights))))


def _undefined_metrics(rank_bound: int, num_present: int, spectrum_length: int) -> dict[str, Any]:
    metrics: dict[str, Any] = dict.fromkeys(METRIC_KEYS, float("nan"))
    metrics["rank_bound"] = float(rank_bound)
    metrics["num_classes_present"] = float(num_present)
    metrics["spectrum"] = np.full(spectrum_length, np.nan)
    return metrics


def geometry_metrics(stats: ClassStatistics) -> dict[str, Any]:
    """All metrics of METRIC_KEYS plus `spectrum` (numpy, length min(d, C - 1)).

    Definitions (over the present classes, C_eff of them):
        within_class: mean_c mean_{i in c} ||z_i - mu_c||; within_rel divides it by
            mean_c ||mu_c - mu_G||.
        nc1: tr(Sigma_W Sigma_B^+) / C_eff, Sigma_W = mean_c of the (biased, 1/n_c) class
            covariances, Sigma_B = M~^T M~ / C_eff. Sigma_B^+ inverts only the top C_eff - 1
            eigen-directions, and of those only eigenvalues above PINV_RELATIVE_TOLERANCE
            times the largest, so a rank-deficient Sigma_B (dimensional collapse) does not
            blow nc1 up through round-off directions.
        unit_norm: mean_c | ||mu_c|| - 1 |. equinorm: std/mean (population std) of
            ||mu_c - mu_G||. zero_sum: ||mu_G||.
        equal_inner_mean / equal_inner_max: mean / max over c != c' of
            |cos(mu_c, mu_c') + 1/(C_eff - 1)|, with the cosine of the raw (uncentred) means
            as in the paper's figure (NaN if some mean is exactly 0).
        etf_distance: || G/||G||_F - E/||E||_F ||_F, G = M~ M~^T, E = I - 11^T / C_eff.
        spectrum: eigenvalues of Sigma_B, descending, divided by the largest (first r).
        dc_count: entries of the first r below DC_RELATIVE_THRESHOLD; dc_fraction = dc_count / r.
        erank_means: effective rank of M~; erank_ratio = erank_means / r.
        erank_features: RankMe of the raw features Z (N, d), with sigma_i = sqrt(eig(Z^T Z)).
        ncm_accuracy: nearest-class-mean accuracy of the samples against their class means.
        log_etf_distance: log10(max(etf_distance, ETF_DISTANCE_FLOOR)).

    Non-finite statistics (NaN/inf features), or class means that all coincide (a constant
    encoder: every normalisation above divides by zero), give NaN for every metric except
    `rank_bound` and `num_classes_present`, and an all-NaN spectrum; nothing is raised.

    Raises:
        ValueError: If fewer than 2 classes have samples (no geometry is defined).
    """
    num_classes, dim = stats.means.shape
    present = stats.counts > 0  # (C,)
    num_present = int(present.sum())
    if num_present < 2:
        raise ValueError(
            f"geometry needs samples from at least 2 classes, got {num_present} of {num_classes}"
        )
    rank_bound = min(dim, num_present - 1)
    spectrum_length = min(dim, num_classes - 1)
    means = stats.means[present]  # (C_eff, d)
    counts = stats.counts[present]  # (C_eff,)
    statistics_finite = all(
        np.isfinite(array).all()
        for array in (means, stats.within_norm_sums[present], stats.within_scatter, stats.gram)
    )
    if not statistics_finite:
        return _undefined_metrics(rank_bound, num_present, spectrum_length)
    global_mean = means.mean(axis=0)  # (d,)
    centred = means - global_mean  # (C_eff, d)
    _, singular_values, right_vectors = np.linalg.svd(centred, full_matrices=False)
    if singular_values[0] == 0.0:
        return _undefined_metrics(rank_bound, num_present, spectrum_length)

    between_eigenvalues = singular_values**2 / num_present  # (min(C_eff, d),) descending
    kept = between_eigenvalues[: num_present - 1]
    kept = kept[kept > PINV_RELATIVE_TOLERANCE * between_eigenvalues[0]]  # (k,)
    directions = right_vectors[: len(kept)]  # (k, d)
    within_covariance = stats.within_scatter / num_present  # (d, d)
    within_along = np.einsum("kd,de,ke->k", directions, within_covariance, directions)  # (k,)
    nc1 = float(np.sum(within_along / kept) / num_present)

    within_class = float(np.mean(stats.within_norm_sums[present] / counts))
    centred_norms = np.linalg.norm(centred, axis=1)  # (C_eff,)
    mean_norms = np.linalg.norm(means, axis=1)  # (C_eff,)

    unit_means = means / mean_norms[:, None]  # (C_eff, d)
    cosines = unit_means @ unit_means.T  # (C_eff, C_eff)
    off_diagonal = ~np.eye(num_present, dtype=bool)
    inner_deviation = np.abs(cosines[off_diagonal] + 1.0 / (num_present - 1))  # (C_eff^2 - C_eff,)

    gram_means = centred @ centred.T  # (C_eff, C_eff)
    simplex = np.eye(num_present) - 1.0 / num_present  # (C_eff, C_eff)
    etf_distance = float(
        np.linalg.norm(gram_means / np.linalg.norm(gram_means) - simplex / np.linalg.norm(simplex))
    )

    spectrum = np.zeros(spectrum_length)
    spectrum[:rank_bound] = between_eigenvalues[:rank_bound] / between_eigenvalues[0]
    dc_count = int(np.sum(spectrum[:rank_bound] < DC_RELATIVE_THRESHOLD))
    erank_means = effective_rank(singular_values)
    feature_singular_values = np.sqrt(np.clip(np.linalg.eigvalsh(stats.gram), 0.0, None))  # (d,)

    return {
        "within_class": within_class,
        "within_rel": within_class / float(centred_norms.mean()),
        "nc1": nc1,
        "unit_norm": float(np.mean(np.abs(mean_norms - 1.0))),
        "equinorm": float(centred_norms.std() / centred_norms.mean()),
        "zero_sum": float(np.linalg.norm(global_mean)),
        "equal_inner_mean": float(inner_deviation.mean()),
        "equal_inner_max": float(inner_deviation.max()),
        "etf_distance": etf_distance,
        "dc_count": float(dc_count),
        "erank_means": erank_means,
        "erank_features": rankme(feature_singular_values),
        "ncm_accuracy": stats.ncm_correct / float(stats.counts.sum()),
        "rank_bound": float(rank_bound),
        "erank_ratio": erank_means / rank_bound,
        "log_etf_distance": float(np.log10(max(etf_distance, ETF_DISTANCE_FLOOR))),
        "dc_fraction": dc_count / rank_bound,
        "num_classes_present": float(num_present),
        "spectrum": spectrum,
    }
