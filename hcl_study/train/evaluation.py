"""Per-epoch measurement: features of the un-augmented sets in eval mode, then geometry."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import ThreadpoolController
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from hcl_study.geometry import REGIME_CODES, GeometryAccumulator, classify_regime, ncm_accuracy
from hcl_study.train.stopping import check_stop


@dataclass
class GeometryResult:
    """Scalar metrics (spectrum excluded), regime, class means (C, d), spectrum (r,)."""

    metrics: dict[str, float]
    regime: str
    class_means: np.ndarray
    spectrum: np.ndarray

    @staticmethod
    def regime_code(regime: str) -> int:
        return REGIME_CODES[regime]


@torch.no_grad()
def embed(
    model: nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager],
    stop: threading.Event | None = None,
) -> tuple[Tensor, Tensor]:
    """Features (N, d) in float32 and labels (N,) of a whole data set, in eval mode.

    Raises:
        EpochInterrupted: `stop` was set; it is checked before every batch.
    """
    model.eval()
    features, labels = [], []
    for x, y in _batches(dataset, batch_size):
        check_stop(stop)
        with autocast():
            z = model(x.to(device, non_blocking=True))
        features.append(z.float())
        labels.append(y.to(device))
    return torch.cat(features), torch.cat(labels)


def evaluate_geometry(
    model: nn.Module,
    train_eval: Dataset,
    test: Dataset,
    *,
    num_classes: int,
    device: torch.device,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager],
    stop: threading.Event | None = None,
) -> GeometryResult:
    """Geometry of the training set's features and nearest-class-mean test accuracy.

    The statistics are small float64 products ((d, d), (C, d)); numpy's BLAS runs them on
    one thread, since a multi-threaded BLAS spent more on synchronizing its threads than
    on the work (up to 10x the evaluation time on many-core and on loaded hosts).

    Raises:
        EpochInterrupted: `stop` was set; it is checked before every embedded batch, so a
            stopped trial leaves the measurement within one batch.
    """
    z_train, y_train = embed(
        model, train_eval, device=device, batch_size=batch_size, autocast=autocast, stop=stop
    )
    z_test, y_test = embed(
        model, test, device=device, batch_size=batch_size, autocast=autocast, stop=stop
    )
    return geometry_of_features(
        z_train, y_train, z_test, y_test, num_classes=num_classes, batch_size=batch_size
    )


def geometry_of_features(
    z_train: Tensor,
    y_train: Tensor,
    z_test: Tensor,
    y_test: Tensor,
    *,
    num_classes: int,
    batch_size: int,
) -> GeometryResult:
    """The geometry metrics, regime and NCM test accuracy of already embedded sets.

    Args:
        z_train: Training-set features (N, d); y_train: their labels (N,).
        z_test: Test-set features (M, d); y_test: their labels (M,).
        num_classes: C.
        batch_size: Rows per streaming update of the accumulator.
    """
    with _blas_threadpools().limit(limits=1, user_api="blas"):
        accumulator = GeometryAccumulator(num_classes, z_train.shape[1])
        batches = [
            (z_train[start : start + batch_size], y_train[start : start + batch_size])
            for start in range(0, len(y_train), batch_size)
        ]
        for z, y in batches:
            accumulator.update(z, y)
        for z, y in batches:  # second pass, against the final class means
            accumulator.update_within(z, y)
        metrics = accumulator.compute()
        spectrum = np.asarray(metrics.pop("spectrum"), dtype=np.float64)
        class_means = accumulator.class_means()  # (C, d)
        metrics["ncm_accuracy_test"] = ncm_accuracy(z_test, y_test, class_means)
    metrics = {key: float(value) for key, value in metrics.items()}
    regime = classify_regime({**metrics, "spectrum": spectrum})
    return GeometryResult(metrics, regime, class_means, spectrum)


@functools.cache
def _blas_threadpools() -> ThreadpoolController:
    """The BLAS libraries loaded in this process, scanned once."""
    return ThreadpoolController()


def _batches(dataset: Dataset, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    if isinstance(dataset, TensorDataset):
        x, y = dataset.tensors
        for start in range(0, len(y), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]
        return
    yield from DataLoader(dataset, batch_size=batch_size, shuffle=False)
