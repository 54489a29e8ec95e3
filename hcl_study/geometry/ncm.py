"""Nearest-class-mean (NCM) classification with Euclidean distance, chunked over samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from hcl_study.geometry.inputs import as_features, as_labels

DEFAULT_CHUNK_SIZE = 4096


def nearest_mean_indices(
    z: np.ndarray, means: np.ndarray, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> np.ndarray:
    """Row index of the nearest mean for each sample; -1 for samples with non-finite features.

    Distances are compared as ||m||^2 - 2 z.m after shifting both z and the means by the mean
    of the means, which keeps the comparison accurate under a large common offset. Memory is
    O(chunk_size * K).

    Args:
        z: Features, shape (N, d), float64.
        means: Candidate means, shape (K, d), float64 (non-finite ones give arbitrary indices).
        chunk_size: Samples scored at once.

    Returns:
        Indices into `means`, shape (N,), int64.
    """
    centre = means.mean(axis=0)  # (d,)
    shifted_means_t = (means - centre).T  # (d, K)
    half_squared_norms = 0.5 * np.einsum("dk,dk->k", shifted_means_t, shifted_means_t)  # (K,)
    indices = np.empty(len(z), dtype=np.int64)
    for start in range(0, len(z), chunk_size):
        chunk = z[start : start + chunk_size]  # (n, d)
        scores = half_squared_norms - (chunk - centre) @ shifted_means_t  # (n, K)
        nearest = np.argmin(scores, axis=1)  # (n,)
        nearest[~np.isfinite(chunk).all(axis=1)] = -1
        indices[start : start + chunk_size] = nearest
    return indices


def ncm_accuracy(
    z: Any, labels: Any, class_means: Any, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> float:
    """Fraction of samples whose nearest class mean (Euclidean) is their own class's mean.

    Rows of `class_means` that contain a non-finite value (e.g. the NaN rows that
    `GeometryAccumulator.class_means()` gives absent classes) are not candidates. Samples
    with non-finite features count as misclassified.

    Args:
        z: Features, shape (N, d); torch (any device) or numpy.
        labels: Integer labels in [0, C), shape (N,).
        class_means: Class means, shape (C, d).
        chunk_size: Samples scored at once (bounds memory to O(chunk_size * C)).

    Returns:
        The accuracy in [0, 1]; NaN if no class mean is finite.

    Raises:
        ValueError: On empty input or mismatched shapes/labels.
    """
    means = as_features(class_means)  # (C, d)
    features = as_features(z, means.shape[1])  # (N, d)
    targets = as_labels(labels, len(means), len(features))  # (N,)
    if len(features) == 0:
        raise ValueError("ncm_accuracy needs at least one sample")
    candidates = np.flatnonzero(np.isfinite(means).all(axis=1))  # (K,)
    if len(candidates) == 0:
        return float("nan")
    nearest = nearest_mean_indices(features, means[candidates], chunk_size)  # (N,)
    predicted = np.where(nearest >= 0, candidates[nearest], -1)  # (N,)
    return float(np.mean(predicted == targets))
