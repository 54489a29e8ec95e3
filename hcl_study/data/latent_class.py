"""The paper's latent-class model: Gaussian classes around seeded random means."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from hcl_study.config import LatentClassData
from hcl_study.data.bundle import DataBundle


def balanced_labels(num_samples: int, num_classes: int) -> np.ndarray:
    """Labels with `num_samples // num_classes` per class, the remainder on the first classes.

    Returns:
        Sorted int64 labels, shape (num_samples,).
    """
    counts = np.full(num_classes, num_samples // num_classes)
    counts[: num_samples % num_classes] += 1
    return np.repeat(np.arange(num_classes, dtype=np.int64), counts)


def _sample(
    rng: np.random.Generator, class_means: np.ndarray, num_samples: int, noise: float
) -> TensorDataset:
    num_classes, input_dim = class_means.shape
    labels = rng.permutation(balanced_labels(num_samples, num_classes))  # (N,)
    x = class_means[labels] + rng.normal(0.0, noise, size=(num_samples, input_dim))  # (N, D)
    return TensorDataset(
        torch.from_numpy(x.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))
    )


def load_latent_class(config: LatentClassData) -> DataBundle:
    """Draw class means mu_c ~ N(0, sigma_mu^2 I), then samples x = mu_y + N(0, sigma^2 I).

    Train and test share the class means; both are class-balanced and shuffled.
    Everything is drawn from one numpy Generator seeded with `config.seed`.
    """
    rng = np.random.default_rng(config.seed)
    class_means = rng.normal(
        0.0, config.class_spread, size=(config.num_classes, config.input_dim)
    )  # (C, D)
    train = _sample(rng, class_means, config.num_train, config.noise)
    test = _sample(rng, class_means, config.num_test, config.noise)
    return DataBundle(
        train=train,
        train_eval=train,
        test=test,
        num_classes=config.num_classes,
        input_shape=(config.input_dim,),
    )
