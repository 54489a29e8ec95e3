"""Image views: the plain (evaluation) transform and SimCLR-style augmentation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision import transforms

ChannelStats = tuple[float, float, float]

# Per-channel statistics of the training images (the values used across the literature).
CIFAR10_MEAN: ChannelStats = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: ChannelStats = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN: ChannelStats = (0.5071, 0.4865, 0.4409)
CIFAR100_STD: ChannelStats = (0.2673, 0.2564, 0.2762)
# ImageNet statistics: the standard choice for arbitrary natural-image folders, which
# would otherwise need a full pass over every image just to normalize.
IMAGENET_MEAN: ChannelStats = (0.485, 0.456, 0.406)
IMAGENET_STD: ChannelStats = (0.229, 0.224, 0.225)


def plain_transform(
    mean: Sequence[float], std: Sequence[float], image_size: int | None = None
) -> transforms.Compose:
    """PIL image -> normalized float32 tensor (3, H, W); with `image_size`, the shorter
    side resized to it and the centre square cropped (the usual evaluation transform: the
    aspect ratio is kept, not squashed)."""
    resize = (
        []
        if image_size is None
        else [transforms.Resize(image_size), transforms.CenterCrop(image_size)]
    )
    return transforms.Compose([*resize, transforms.ToTensor(), transforms.Normalize(mean, std)])


def simclr_transform(
    mean: Sequence[float], std: Sequence[float], image_size: int
) -> transforms.Compose:
    """SimCLR's CIFAR augmentation: resized crop, flip, colour jitter (p=0.8), grayscale (p=0.2).

    Randomness comes from torch's global generator, so `torch.manual_seed` makes it
    reproducible; in DataLoader workers, torch seeds each worker's global generator from the
    loader's `generator` (the trainer's shuffle generator).
    """
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


def as_int64(label: int) -> Tensor:
    """Target transform: a class index as a 0-d int64 tensor (as TensorDataset yields)."""
    return torch.tensor(label, dtype=torch.int64)
