"""scikit-learn's bundled 8x8 digits, standardized with training statistics."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits as sklearn_load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from hcl_study.config import DigitsData
from hcl_study.data.bundle import DataBundle


def _tensor_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
    return TensorDataset(
        torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    )


def load_digits(config: DigitsData) -> DataBundle:
    """Seeded stratified split of the 1,797 digits, standardized per pixel.

    Means and stds come from the training split; pixels that are constant in training
    carry no information and are set to 0 in both splits.
    """
    x, y = sklearn_load_digits(return_X_y=True)  # (1797, 64), (1797,)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=config.test_fraction, stratify=y, random_state=config.seed
    )
    mean = x_train.mean(axis=0)  # (64,)
    std = x_train.std(axis=0)  # (64,)
    informative = std > 0
    scale = np.where(informative, std, 1.0)

    def standardize(features: np.ndarray) -> np.ndarray:
        return np.where(informative, (features - mean) / scale, 0.0)

    train = _tensor_dataset(standardize(x_train), y_train)
    return DataBundle(
        train=train,
        train_eval=train,
        test=_tensor_dataset(standardize(x_test), y_test),
        num_classes=config.num_classes,
        input_shape=(x.shape[1],),
    )
