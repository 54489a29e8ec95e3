"""CIFAR-10 / CIFAR-100 from a local, already extracted "python version" archive.

Nothing is downloaded. The raw images stay in memory as uint8 (150 MB for 50,000
training images). Without augmentation every split is returned as one normalized
float32 `TensorDataset` (N, 3, 32, 32): 614 MB for the 50,000 training images of either
CIFAR-10 or CIFAR-100 plus 123 MB for the test set, which is acceptable and lets the
training loop skip per-item PIL work. With augmentation only `train` is a per-item
augmenting dataset; `train_eval` and `test` stay tensors.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset
from torchvision import transforms

from hcl_study.config import CifarData
from hcl_study.data.bundle import DataBundle
from hcl_study.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    ChannelStats,
    simclr_transform,
)
from hcl_study.errors import DataError

IMAGE_SIZE = 32
INPUT_SHAPE = (3, IMAGE_SIZE, IMAGE_SIZE)


@dataclass(frozen=True)
class CifarLayout:
    """Where the files of one CIFAR variant live and how labels are keyed."""

    title: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    other_files: tuple[str, ...]
    label_key: bytes
    mean: ChannelStats
    std: ChannelStats

    @property
    def required_files(self) -> tuple[str, ...]:
        return (*self.train_files, self.test_file, *self.other_files)


LAYOUTS: dict[str, CifarLayout] = {
    "cifar10": CifarLayout(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{index}" for index in range(1, 6)),
        test_file="test_batch",
        other_files=(),
        label_key=b"labels",
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
    ),
    "cifar100": CifarLayout(
        title="CIFAR-100",
        folder="cifar-100-python",
        train_files=("train",),
        test_file="test",
        other_files=("meta",),
        label_key=b"fine_labels",
        mean=CIFAR100_MEAN,
        std=CIFAR100_STD,
    ),
}


def resolve_cifar_dir(root: Path, layout: CifarLayout) -> Path:
    """The folder holding the files: `root` itself or `root/<official folder name>`.

    Raises:
        DataError: If the root is missing or lacks any expected file.
    """
    expected = ", ".join(layout.required_files)
    hint = (
        f"Expected an extracted {layout.title} 'python version' archive: a folder with "
        f"{expected}, given either as that folder or as its parent containing "
        f"'{layout.folder}'. Nothing is downloaded; fetch and extract the archive yourself."
    )
    if root.exists() and not root.is_dir():
        raise DataError(
            f"data.root: '{root}' is a file, not a folder (extract the archive first). {hint}"
        )
    if not root.is_dir():
        raise DataError(f"data.root: {layout.title} folder '{root}' does not exist. {hint}")
    nested = root / layout.folder
    folder = nested if nested.is_dir() else root
    missing = [name for name in layout.required_files if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"data.root: the {layout.title} copy at '{folder}' is incomplete; missing "
            f"{', '.join(missing)}. {hint}"
        )
    return folder


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only, so a planted file cannot run code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickled batch.

    Returns:
        Images uint8 (N, 32, 32, 3) and labels int64 (N,) in [0, num_classes).

    Raises:
        DataError: If the file is not a CIFAR batch of `num_classes` classes.
    """
    try:
        with open(path, "rb") as handle:
            batch = _CifarUnpickler(handle, encoding="bytes").load()
        data = np.asarray(batch[b"data"])  # (N, 3072)
        labels = np.asarray(batch[label_key])  # (N,)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise DataError(
            f"data.root: '{path}' is not a readable CIFAR batch (a pickle with b'data' and "
            f"{label_key!r}): {error}"
        ) from error
    if (
        data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE
        or labels.shape != (len(data),)
    ):
        raise DataError(
            f"data.root: '{path}' holds {data.dtype} data of shape {data.shape} and labels of "
            f"shape {labels.shape}; expected (N, 3072) uint8 and N labels."
        )
    if len(labels) and not np.issubdtype(labels.dtype, np.integer):
        # No min()/max() here: they fail on None or bytes labels.
        raise DataError(
            f"data.root: '{path}' holds labels of type {labels.dtype} (the first: "
            f"{labels[:3].tolist()!r}); a {num_classes}-class batch has integer labels 0 to "
            f"{num_classes - 1}."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"data.root: '{path}' holds labels from {labels.min()} to {labels.max()}; a "
            f"{num_classes}-class batch has integer labels 0 to {num_classes - 1}."
        )
    images = data.reshape(-1, *INPUT_SHAPE).transpose(0, 2, 3, 1)  # (N, 32, 32, 3)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def normalized_tensor(images: np.ndarray, mean: ChannelStats, std: ChannelStats) -> Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W), equal to ToTensor + Normalize per image."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(mean_t).div_(std_t)


class AugmentedImages(Dataset):
    """uint8 images kept in memory, transformed (augmented) on every read."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, transform: transforms.Compose
    ) -> None:
        """Keep the images and labels.

        Args:
            images: uint8 images, shape (N, H, W, 3).
            labels: int64 class indices, shape (N,).
            transform: Applied to each image as a PIL image.
        """
        self.images = images
        self.labels = torch.from_numpy(labels)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.transform(Image.fromarray(self.images[index]))  # (3, H, W)
        return image, self.labels[index]


def load_cifar(config: CifarData) -> DataBundle:
    """Load CIFAR-10 or CIFAR-100 (optionally the first `subset` training images)."""
    layout = LAYOUTS[config.name]
    folder = resolve_cifar_dir(Path(config.root).expanduser(), layout)
    classes = config.num_classes
    parts = [read_batch(folder / name, layout.label_key, classes) for name in layout.train_files]
    train_images = np.concatenate([images for images, _ in parts])
    if config.subset is not None and config.subset > len(train_images):
        raise DataError(
            f"data.subset: {config.subset} is more than the {len(train_images)} training images "
            f"of the {layout.title} copy at '{folder}'; leave it out to use them all."
        )
    train_images = train_images[: config.subset]
    train_labels = np.concatenate([labels for _, labels in parts])[: config.subset]
    test_images, test_labels = read_batch(folder / layout.test_file, layout.label_key, classes)

    train_eval = TensorDataset(
        normalized_tensor(train_images, layout.mean, layout.std), torch.from_numpy(train_labels)
    )
    train: Dataset = train_eval
    if config.augment:
        augmentation = simclr_transform(layout.mean, layout.std, IMAGE_SIZE)
        train = AugmentedImages(train_images, train_labels, augmentation)
    test = TensorDataset(
        normalized_tensor(test_images, layout.mean, layout.std), torch.from_numpy(test_labels)
    )
    return DataBundle(
        train=train,
        train_eval=train_eval,
        test=test,
        num_classes=config.num_classes,
        input_shape=INPUT_SHAPE,
    )
