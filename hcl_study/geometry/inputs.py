"""Conversion of feature/label batches (torch on any device, or numpy) to float64/int64 numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_features(z: Any, dim: int | None = None) -> np.ndarray:
    """Features as a float64 numpy array of shape (B, d), copied to the CPU if needed.

    Args:
        z: Torch tensor (any device/dtype) or array-like, shape (B, d).
        dim: Expected feature dimension d; not checked when None.

    Raises:
        ValueError: If z is not 2-D or its width is not `dim`.
    """
    if isinstance(z, torch.Tensor):
        array = z.detach().to(device="cpu", dtype=torch.float64).numpy()
    else:
        array = np.asarray(z, dtype=np.float64)
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim):
        expected = f"(B, {dim})" if dim is not None else "(B, d)"
        raise ValueError(f"features must have shape {expected}, got {tuple(array.shape)}")
    return array


def as_labels(labels: Any, num_classes: int, num_samples: int) -> np.ndarray:
    """Integer class labels as an int64 numpy array of shape (B,), range-checked.

    Args:
        labels: Torch tensor (any device) or array-like of integers, shape (B,).
        num_classes: Labels must lie in [0, num_classes).
        num_samples: Expected length B (the number of feature rows).

    Raises:
        ValueError: On a wrong shape, a non-integer dtype or an out-of-range label.
    """
    array = (
        labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    )
    if array.shape != (num_samples,):
        raise ValueError(f"labels must have shape ({num_samples},), got {tuple(array.shape)}")
    if num_samples == 0:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got range [{array.min()}, {array.max()}]"
        )
    return array.astype(np.int64)
