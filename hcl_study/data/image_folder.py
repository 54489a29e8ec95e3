"""Any torchvision ImageFolder tree (`root/<class>/<image>`), e.g. Tiny-ImageNet's train/.

As torchvision's `ImageFolder`, except that hidden entries (names starting with '.', such
as `.ipynb_checkpoints/` or macOS `._photo.png` files) are neither classes nor images.
"""

from __future__ import annotations

from pathlib import Path

from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader, has_file_allowed_extension

from hcl_study.config import ImageFolderData
from hcl_study.data.bundle import DataBundle
from hcl_study.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    as_int64,
    plain_transform,
    simclr_transform,
)
from hcl_study.errors import DataError

Sample = tuple[str, int]


class ImageFiles(Dataset):
    """Images read from disk on every access, as (float32 (3, H, W), int64 label)."""

    def __init__(self, samples: list[Sample], transform: transforms.Compose) -> None:
        """Store the (path, class index) pairs and the PIL-image transform."""
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path, label = self.samples[index]
        try:
            image = default_loader(path)
        except OSError as error:  # PIL's UnidentifiedImageError is one
            raise DataError(
                f"data: the image file {path} cannot be read ({error}); replace or remove it."
            ) from None
        return self.transform(image), as_int64(label)


class _VisibleImageFolder(ImageFolder):
    """`ImageFolder` without hidden class folders and files."""

    def __init__(self, root: str) -> None:
        super().__init__(root, is_valid_file=lambda path: _is_visible_image(path, root))

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        classes = sorted(
            entry.name
            for entry in Path(directory).iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        )
        if not classes:
            raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
        return classes, {name: index for index, name in enumerate(classes)}


def _is_visible_image(path: str, root: str) -> bool:
    """An image file, hidden neither itself nor in a hidden folder below `root`.

    torchvision walks class folders recursively, so `class/.ipynb_checkpoints/x.png`
    must be refused for its folder, not only `class/._x.png` for its name.
    """
    below_root = Path(path).relative_to(root).parts
    return not any(part.startswith(".") for part in below_root) and has_file_allowed_extension(
        path, IMG_EXTENSIONS
    )


def scan_tree(root: str, field: str) -> tuple[list[Sample], list[str]]:
    """List an ImageFolder tree.

    Returns:
        The (path, class index) samples and the sorted class names.

    Raises:
        DataError: If the folder is missing, has no class folders or no images.
    """
    path = Path(root).expanduser()
    layout = (
        "an ImageFolder tree: one sub-folder per class holding that class's images "
        "(.png, .jpg, ...), e.g. root/cat/001.png"
    )
    if path.exists() and not path.is_dir():
        raise DataError(f"{field}: '{path}' is a file, not a folder; expected {layout}.")
    if not path.is_dir():
        raise DataError(f"{field}: image folder '{path}' does not exist; expected {layout}.")
    try:
        tree = _VisibleImageFolder(str(path))
    except FileNotFoundError as error:
        raise DataError(
            f"{field}: '{path}' holds no images in class folders ({error}); expected {layout}."
        ) from error
    return tree.samples, tree.classes


def split_samples(
    samples: list[Sample], test_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Seeded stratified train/test split of one tree.

    Raises:
        DataError: If some class is too small to appear on both sides.
    """
    labels = [label for _, label in samples]
    try:
        train_indices, test_indices = train_test_split(
            range(len(samples)), test_size=test_fraction, stratify=labels, random_state=seed
        )
    except ValueError as error:
        raise DataError(
            f"data.test_fraction: cannot split the images of data.root into stratified "
            f"train and test sets ({error}); give every class more images, change "
            f"data.test_fraction, or set data.test_root."
        ) from error
    return [samples[i] for i in train_indices], [samples[i] for i in test_indices]


def image_folder_samples(config: ImageFolderData) -> tuple[list[Sample], list[Sample]]:
    """The train and test samples of `config`, with every check that loading makes.

    Raises:
        DataError: A missing or empty tree, a class count other than `data.num_classes`,
            test classes unlike the training ones, or classes too small to split.
    """
    samples, classes = scan_tree(config.root, "data.root")
    if len(classes) < 2:
        raise DataError(
            f"data.root: '{config.root}' has {len(classes)} class folder; contrastive classes "
            "need at least 2 (one folder per class, images inside)."
        )
    if len(classes) != config.num_classes:
        raise DataError(
            f"data.num_classes: the config says {config.num_classes} classes, but "
            f"data.root '{config.root}' has {len(classes)} class folders; set "
            f"data.num_classes to {len(classes)} or point data.root at the right tree."
        )
    if config.test_root is None:
        return split_samples(samples, config.test_fraction, config.seed)
    test_samples, test_classes = scan_tree(config.test_root, "data.test_root")
    if test_classes != classes:
        only_test = sorted(set(test_classes) - set(classes))
        only_train = sorted(set(classes) - set(test_classes))
        raise DataError(
            f"data.test_root: its class folders differ from those of data.root; only in "
            f"data.test_root: {_listed(only_test)}; only in data.root: {_listed(only_train)}. "
            f"Both trees need the same class sub-folders (names are case-sensitive)."
        )
    return samples, test_samples


def _listed(names: list[str], shown: int = 5) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(name) for name in names[:shown]) + more


def load_image_folder(config: ImageFolderData) -> DataBundle:
    """Load `config.root` (and `config.test_root`, or a split), at `image_size` (shorter
    side resized, centre square cropped; augmentation crops at random instead).

    Images are normalized with ImageNet channel statistics.
    """
    train_samples, test_samples = image_folder_samples(config)
    plain = plain_transform(IMAGENET_MEAN, IMAGENET_STD, config.image_size)
    train_eval = ImageFiles(train_samples, plain)
    train: Dataset = train_eval
    if config.augment:
        train = ImageFiles(
            train_samples, simclr_transform(IMAGENET_MEAN, IMAGENET_STD, config.image_size)
        )
    return DataBundle(
        train=train,
        train_eval=train_eval,
        test=ImageFiles(test_samples, plain),
        num_classes=config.num_classes,
        input_shape=(3, config.image_size, config.image_size),
    )
