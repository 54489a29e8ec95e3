"""Data sets: the latent-class model, digits, CIFAR-10/100 and ImageFolder trees."""

from __future__ import annotations

from pathlib import Path

from hcl_study.config import (
    CifarData,
    DataConfig,
    DigitsData,
    ImageFolderData,
    LatentClassData,
)
from hcl_study.data.bundle import DataBundle
from hcl_study.data.cifar import LAYOUTS, load_cifar, resolve_cifar_dir
from hcl_study.data.digits import load_digits
from hcl_study.data.image_folder import image_folder_samples, load_image_folder
from hcl_study.data.latent_class import load_latent_class


def load_dataset(config: DataConfig) -> DataBundle:
    """Load the data set a `data:` config describes.

    Raises:
        DataError: If a local copy (CIFAR, image folder) is missing or incomplete.
    """
    if isinstance(config, LatentClassData):
        return load_latent_class(config)
    if isinstance(config, DigitsData):
        return load_digits(config)
    if isinstance(config, CifarData):
        return load_cifar(config)
    if isinstance(config, ImageFolderData):
        return load_image_folder(config)
    raise TypeError(f"unknown data config {type(config).__name__}")


def check_data_available(config: DataConfig) -> None:
    """Check that a local copy exists and is complete, without loading it.

    Raises:
        DataError: Naming the config field and the missing files.
    """
    if isinstance(config, CifarData):
        resolve_cifar_dir(Path(config.root).expanduser(), LAYOUTS[config.name])
    elif isinstance(config, ImageFolderData):
        image_folder_samples(config)


__all__ = ["DataBundle", "check_data_available", "load_dataset"]
