"""Streaming, exact geometry statistics over batches, in two passes.

Design (exact, memory independent of N). The mean norm of the within-class deviations,
mean_i ||z_i - mu_c||, cannot be recovered from first and second moments, so the
accumulator reads the samples twice:

1. `update(z, labels)` over all batches accumulates, in float64, per-class counts and sums
   (hence the class means) and the raw second moment Z^T Z (for RankMe).
2. `update_within(z, labels)` over the same samples again (any batching, any order) uses the
   now final class means to accumulate, per class, the sum of ||z_i - mu_c||, the within-class
   scatter sum_c (1/n_c) sum_i (z_i - mu_c)(z_i - mu_c)^T, and the nearest-class-mean hits.

Deviations are formed against the final means, so the within-class statistics have no
E[zz^T] - mu mu^T cancellation: a large common offset (e.g. 1e4) costs only the float64
round-off of the means themselves. Memory is O(C d + d^2) whatever N is. `compute()` checks
that the second pass saw exactly as many samples of each class as the first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hcl_study.geometry.inputs import as_features, as_labels
from hcl_study.geometry.metrics import ClassStatistics, geometry_metrics
from hcl_study.geometry.ncm import nearest_mean_indices

DEFAULT_BATCH_SIZE = 8192


class GeometryAccumulator:
    """Accumulates class statistics of features over batches and computes the geometry metrics.

    Usage: call `update` on every batch, then `update_within` on every batch of the same
    samples, then `compute`. Inputs may be torch tensors on any device or numpy arrays.
    Classes without samples are left out of the metrics (see `metrics.geometry_metrics`).
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        """Create an empty accumulator.

        Args:
            num_classes: Number of classes C (labels lie in [0, C)); at least 2.
            dim: Feature dimension d.
        """
        if num_classes < 2 or dim < 1:
            raise ValueError(f"need num_classes >= 2 and dim >= 1, got {num_classes}, {dim}")
        self.num_classes = num_classes
        self.dim = dim
        self._counts = np.zeros(num_classes, dtype=np.int64)  # (C,)
        self._sums = np.zeros((num_classes, dim))  # (C, d)
        self._gram = np.zeros((dim, dim))  # (d, d)
        self._frozen_means: np.ndarray | None = None  # (C, d), set by the first update_within
        self._present = np.arange(0)  # (C_eff,) classes with samples, set with the means
        self._within_counts = np.zeros(num_classes, dtype=np.int64)  # (C,)
        self._within_norm_sums = np.zeros(num_classes)  # (C,)
        self._within_scatter = np.zeros((dim, dim))  # (d, d)
        self._ncm_correct = 0

    def update(self, z: Any, labels: Any) -> None:
        """First pass: add a batch to the class counts, class sums and Z^T Z.

        Args:
            z: Features, shape (B, d).
            labels: Integer labels in [0, C), shape (B,).

        Raises:
            RuntimeError: If the second pass has already started (the means are frozen).
        """
        if self._frozen_means is not None:
            raise RuntimeError("update() after update_within(): the first pass is closed")
        features = as_features(z, self.dim)  # (B, d)
        targets = as_labels(labels, self.num_classes, len(features))  # (B,)
        one_hot = np.zeros((len(features), self.num_classes))  # (B, C)
        one_hot[np.arange(len(features)), targets] = 1.0
        self._counts += np.bincount(targets, minlength=self.num_classes)
        with np.errstate(invalid="ignore"):  # non-finite features: NaN metrics, by design
            self._sums += one_hot.T @ features
            self._gram += features.T @ features

    def class_means(self) -> np.ndarray:
        """Class means from the first pass, shape (C, d); NaN rows for classes without samples."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._sums / self._counts[:, None].astype(np.float64)

    def update_within(self, z: Any, labels: Any) -> None:
        """Second pass: add a batch's deviations from the (now frozen) class means.

        Args:
            z: Features, shape (B, d), the same samples as the first pass in any batching.
            labels: Integer labels in [0, C), shape (B,).

        Raises:
            ValueError: If a sample's class had no samples in the first pass.
        """
        if self._frozen_means is None:
            self._frozen_means = self.class_means()
            self._present = np.flatnonzero(self._counts > 0)
        features = as_features(z, self.dim)  # (B, d)
        targets = as_labels(labels, self.num_classes, len(features))  # (B,)
        if np.any(self._counts[targets] == 0):
            raise ValueError("update_within() got a class that update() never saw")
        with np.errstate(invalid="ignore"):  # non-finite features: NaN metrics, by design
            deviations = features - self._frozen_means[targets]  # (B, d)
            weighted = deviations / np.sqrt(self._counts[targets])[:, None]  # (B, d)
            self._within_scatter += weighted.T @ weighted
            self._within_norm_sums += np.bincount(
                targets, weights=np.linalg.norm(deviations, axis=1), minlength=self.num_classes
            )
            nearest = nearest_mean_indices(features, self._frozen_means[self._present])  # (B,)
        self._within_counts += np.bincount(targets, minlength=self.num_classes)
        self._ncm_correct += int(np.sum((nearest >= 0) & (self._present[nearest] == targets)))

    def compute(self) -> dict[str, Any]:
        """The metrics of `METRIC_KEYS` (floats) plus `spectrum` (numpy array).

        Raises:
            RuntimeError: If the second pass has not covered exactly the first pass's samples.
            ValueError: If fewer than 2 classes have samples.
        """
        if np.any(self._within_counts != self._counts):
            raise RuntimeError(
                "compute() needs a complete second pass: call update_within() on every sample "
                "given to update() (per-class counts differ)"
            )
        stats = ClassStatistics(
            counts=self._counts,
            means=self.class_means() if self._frozen_means is None else self._frozen_means,
            within_norm_sums=self._within_norm_sums,
            within_scatter=self._within_scatter,
            gram=self._gram,
            ncm_correct=self._ncm_correct,
        )
        return geometry_metrics(stats)


def compute_geometry(
    z: Any, labels: Any, num_classes: int, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict[str, Any]:
    """One-shot geometry metrics of a feature set (both passes, in chunks of `batch_size`).

    Args:
        z: Features, shape (N, d); torch (any device) or numpy. Chunks are copied to the CPU
            one at a time, so host memory beyond the statistics is O(batch_size * d).
        labels: Integer labels in [0, C), shape (N,).
        num_classes: Number of classes C.
        batch_size: Samples per chunk.

    Returns:
        As `GeometryAccumulator.compute`; `ncm_accuracy` is of z against its own class means.
    """
    if len(z.shape) != 2 or len(labels) != z.shape[0]:
        raise ValueError(
            f"need features (N, d) and labels (N,), got {tuple(z.shape)} and {len(labels)} labels"
        )
    accumulator = GeometryAccumulator(num_classes, int(z.shape[1]))
    chunks = [slice(start, start + batch_size) for start in range(0, int(z.shape[0]), batch_size)]
    for chunk in chunks:
        accumulator.update(z[chunk], labels[chunk])
    for chunk in chunks:
        accumulator.update_within(z[chunk], labels[chunk])
    return accumulator.compute()
