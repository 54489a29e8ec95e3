"""The train / train-eval / test triple every loader returns."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset


@dataclass(frozen=True)
class DataBundle:
    """A loaded data set.

    Vector data (latent_class, digits) and un-augmented CIFAR are `TensorDataset`s of
    (x float32, y int64), so the training loop can index `.tensors` directly.

    Attributes:
        train: Training view (augmented if configured).
        train_eval: Un-augmented training set in the same order, for metrics.
        test: Test set, un-augmented.
        num_classes: Number of classes C.
        input_shape: Shape of one input, `(D,)` or `(3, H, W)`.
    """

    train: Dataset
    train_eval: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
