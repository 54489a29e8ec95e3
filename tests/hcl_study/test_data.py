"""Data loaders: latent-class model, digits, CIFAR copies and ImageFolder trees."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_datasets import fake_cifar_train_labels, write_fake_cifar, write_fake_image_folder
from PIL import Image
from torch.utils.data import TensorDataset

from hcl_study.config import (
    CifarData,
    DigitsData,
    ImageFolderData,
    LatentClassData,
    TrainConfig,
)
from hcl_study.data import DataBundle, load_dataset
from hcl_study.data.cifar import LAYOUTS, read_batch
from hcl_study.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    plain_transform,
)
from hcl_study.errors import DataError


def _class_means(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.stack([x[y == label].mean(dim=0) for label in range(num_classes)])  # (C, D)


# --- latent_class -------------------------------------------------------------------------


def test_latent_class_shapes_dtypes_and_balance() -> None:
    config = LatentClassData(num_classes=5, input_dim=4, num_train=103, num_test=20)
    bundle = load_dataset(config)

    assert isinstance(bundle.train, TensorDataset)
    assert isinstance(bundle.test, TensorDataset)
    assert bundle.train_eval is bundle.train
    assert bundle.num_classes == 5
    assert bundle.input_shape == (4,)
    x, y = bundle.train.tensors
    assert x.shape == (103, 4) and x.dtype == torch.float32
    assert y.shape == (103,) and y.dtype == torch.int64
    assert torch.bincount(y, minlength=5).tolist() == [21, 21, 21, 20, 20]
    x_test, y_test = bundle.test.tensors
    assert x_test.shape == (20, 4)
    assert torch.bincount(y_test, minlength=5).tolist() == [4, 4, 4, 4, 4]


def test_latent_class_is_deterministic_per_seed() -> None:
    config = LatentClassData(num_classes=4, input_dim=3, num_train=40, num_test=8, seed=1)
    first, again = load_dataset(config), load_dataset(config)
    other = load_dataset(config.model_copy(update={"seed": 2}))

    first_tensors = first.train.tensors + first.test.tensors
    again_tensors = again.train.tensors + again.test.tensors
    for a, b in zip(first_tensors, again_tensors, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first.train.tensors[0], other.train.tensors[0])


def test_latent_class_statistics_match_sigma_mu_and_sigma() -> None:
    config = LatentClassData(
        num_classes=200, input_dim=16, num_train=40_000, num_test=200, class_spread=2.0, noise=0.5
    )
    x, y = load_dataset(config).train.tensors
    means = _class_means(x, y, 200)  # (C, D)
    within = x - means[y]  # (N, D)

    assert means.std().item() == pytest.approx(2.0, rel=0.08)
    assert within.std().item() == pytest.approx(0.5, rel=0.05)


def test_latent_class_train_and_test_share_class_means() -> None:
    config = LatentClassData(num_classes=5, input_dim=4, num_train=4000, num_test=4000)
    bundle = load_dataset(config)
    train_means = _class_means(*bundle.train.tensors, 5)
    test_means = _class_means(*bundle.test.tensors, 5)

    assert (train_means - test_means).abs().max().item() < 0.3


# --- digits -------------------------------------------------------------------------------


def test_digits_sizes_split_and_standardization() -> None:
    bundle = load_dataset(DigitsData(test_fraction=0.25, seed=0))
    x, y = bundle.train.tensors
    x_test, y_test = bundle.test.tensors

    assert isinstance(bundle.test, TensorDataset)
    assert len(y) + len(y_test) == 1797
    assert len(y_test) == 450
    assert bundle.num_classes == 10 and bundle.input_shape == (64,)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert set(y.tolist()) == set(range(10)) and set(y_test.tolist()) == set(range(10))
    class_totals = torch.bincount(torch.cat([y, y_test]), minlength=10).double()
    test_share = torch.bincount(y_test, minlength=10).double() / class_totals
    assert (test_share - 0.25).abs().max().item() < 0.02

    column_means = x.double().mean(dim=0)
    column_stds = x.double().std(dim=0, unbiased=False)
    assert column_means.abs().max().item() < 1e-5
    informative = column_stds > 0
    assert informative.sum().item() >= 60
    assert torch.allclose(column_stds[informative], torch.ones(1, dtype=torch.float64), atol=1e-5)
    assert (x_test[:, ~informative] == 0).all()


def test_digits_split_depends_on_seed() -> None:
    first = load_dataset(DigitsData(seed=0)).test.tensors[1]
    again = load_dataset(DigitsData(seed=0)).test.tensors[1]
    other = load_dataset(DigitsData(seed=1)).test.tensors[1]

    assert torch.equal(first, again)
    assert not torch.equal(first, other)


# --- cifar --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("nested", [False, True])
def test_cifar_fake_copy_loads_in_both_layouts(tmp_path: Path, name: str, nested: bool) -> None:
    root = write_fake_cifar(tmp_path, name, num_train=20, num_test=10, nested=nested)
    bundle = load_dataset(CifarData(name=name, root=str(root)))

    assert isinstance(bundle.train, TensorDataset)
    assert bundle.train_eval is bundle.train
    assert bundle.input_shape == (3, 32, 32)
    assert bundle.num_classes == (10 if name == "cifar10" else 100)
    x, y = bundle.train.tensors
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert y.tolist() == fake_cifar_train_labels(name, 20)
    x_test, y_test = bundle.test.tensors
    assert x_test.shape == (10, 3, 32, 32)
    assert 0 <= y_test.min() and y_test.max() < bundle.num_classes


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("python2", [True, False], ids=["original_pickles", "python3_pickles"])
def test_cifar_images_and_labels_equal_torchvisions(
    tmp_path: Path, name: str, python2: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pixels (orientation, channel order), labels and splits as torchvision reads the
    original files (Python 2 pickles; torchvision cannot read a Python 3 re-save, we can)."""
    from torchvision import datasets, transforms

    monkeypatch.setattr(datasets.cifar, "check_integrity", lambda *args: True)  # fake files
    reference_root = write_fake_cifar(tmp_path / "original", name, nested=True)
    root = write_fake_cifar(tmp_path / "ours", name, nested=True, python2=python2)
    bundle = load_dataset(CifarData(name=name, root=str(root)))
    layout = LAYOUTS[name]
    normalize = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(layout.mean, layout.std)]
    )
    reference_class = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    for train, ours in ((True, bundle.train), (False, bundle.test)):
        reference = reference_class(
            str(reference_root), train=train, transform=normalize, download=False
        )
        assert len(reference) == len(ours)
        for index in range(len(ours)):
            image, label = reference[index]
            assert torch.allclose(ours[index][0], image, atol=1e-6)
            assert ours[index][1].item() == label


@pytest.mark.parametrize(
    ("data", "labels", "expected"),
    [
        (np.full((2, 3072), 0.5), [0, 1], "float64 data of shape"),
        (np.zeros((2, 3072), dtype=np.int64), [0, 1], "int64 data"),
        (np.zeros((2, 3072), dtype=np.uint8), [0, 10], "labels from 0 to 10"),
        (np.zeros((2, 3072), dtype=np.uint8), [-1, 3], "labels from -1 to 3"),
        (np.zeros((2, 3072), dtype=np.uint8), [0.0, 1.5], "integer labels 0 to 9"),
        (np.zeros((2, 3072), dtype=np.uint8), [0], "labels of shape (1,); expected (N, 3072)"),
        (np.zeros((2, 100), dtype=np.uint8), [0, 1], "shape (2, 100)"),
        (np.zeros((2, 6144), dtype=np.uint8), [0, 1], "shape (2, 6144)"),
    ],
)
def test_cifar_batch_with_other_data_or_labels_is_a_data_error(
    tmp_path: Path, data: np.ndarray, labels: list[float], expected: str
) -> None:
    """Such a batch used to be cast to uint8 (wrapping values) or fail inside training."""
    root = write_fake_cifar(tmp_path, "cifar10", python2=False)
    (root / "data_batch_2").write_bytes(pickle.dumps({b"data": data, b"labels": labels}))
    with pytest.raises(DataError, match="data_batch_2") as caught:
        load_dataset(CifarData(name="cifar10", root=str(root)))
    assert expected in str(caught.value)


def test_cifar_subset_beyond_the_training_images_is_a_data_error(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, "cifar10", num_train=20)
    with pytest.raises(DataError, match="data.subset: 21 is more than the 20 training images"):
        load_dataset(CifarData(name="cifar10", root=str(root), subset=21))


def test_an_empty_cifar_batch_reads_as_no_images(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}))
    images, labels = read_batch(path, LAYOUTS["cifar10"].label_key, 10)
    assert images.shape == (0, 32, 32, 3) and labels.shape == (0,)


def test_cifar_root_that_is_a_file_says_so(tmp_path: Path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_dataset(CifarData(name="cifar10", root=str(archive)))


def test_cifar_subset_takes_the_first_training_images(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, "cifar10", num_train=20)
    full = load_dataset(CifarData(name="cifar10", root=str(root)))
    subset = load_dataset(CifarData(name="cifar10", root=str(root), subset=7))

    assert len(subset.train) == 7 and len(subset.train_eval) == 7
    assert torch.equal(subset.train.tensors[0], full.train.tensors[0][:7])
    assert len(subset.test) == len(full.test)
    whole = load_dataset(CifarData(name="cifar10", root=str(root), subset=20))
    assert torch.equal(whole.train.tensors[0], full.train.tensors[0])


def test_cifar_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="data.root") as caught:
        load_dataset(CifarData(name="cifar10", root=str(missing)))
    assert str(missing) in str(caught.value)
    assert "data_batch_1" in str(caught.value)


@pytest.mark.parametrize(("name", "removed"), [("cifar10", "data_batch_3"), ("cifar100", "meta")])
def test_cifar_partial_root_names_the_missing_file(tmp_path: Path, name: str, removed: str) -> None:
    root = write_fake_cifar(tmp_path, name, nested=True)
    folder = next(root.iterdir())
    (folder / removed).unlink()

    with pytest.raises(DataError, match="data.root") as caught:
        load_dataset(CifarData(name=name, root=str(root)))
    message = str(caught.value)
    assert f"missing {removed}." in message  # only the removed file is listed
    assert str(folder) in message


def test_cifar_corrupt_batch_is_a_data_error(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, "cifar10")
    (root / "test_batch").write_bytes(b"not a pickle")

    with pytest.raises(DataError, match="test_batch"):
        load_dataset(CifarData(name="cifar10", root=str(root)))


def _raw_cifar10_image(root: Path, index: int) -> Image.Image:
    with open(root / "data_batch_1", "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    return Image.fromarray(batch[b"data"][index].reshape(3, 32, 32).transpose(1, 2, 0))


def test_cifar_augmentation_differs_per_read_and_train_eval_is_plain(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, "cifar10", num_train=10)
    bundle = load_dataset(CifarData(name="cifar10", root=str(root), augment=True))

    assert not isinstance(bundle.train, TensorDataset)
    assert len(bundle.train) == len(bundle.train_eval) == 10
    torch.manual_seed(0)
    first, label = bundle.train[1]
    second, _ = bundle.train[1]
    torch.manual_seed(0)
    replay, _ = bundle.train[1]
    assert first.shape == (3, 32, 32) and first.dtype == torch.float32
    assert label.dtype == torch.int64 and label.item() == 1
    assert not torch.equal(first, second)
    assert torch.equal(first, replay)

    expected = plain_transform(CIFAR10_MEAN, CIFAR10_STD)(_raw_cifar10_image(root, 1))
    assert torch.allclose(bundle.train_eval[1][0], expected, atol=1e-6)


# --- image_folder -------------------------------------------------------------------------


def _image_folder(root: Path, num_classes: int = 2, **fields: object) -> DataBundle:
    config = ImageFolderData(root=str(root), num_classes=num_classes, image_size=16, **fields)
    return load_dataset(config)


def test_image_folder_split_shapes_and_classes(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "tree", num_classes=3, images_per_class=5)
    bundle = _image_folder(root, num_classes=3, test_fraction=0.4, seed=0)

    assert bundle.num_classes == 3
    assert bundle.input_shape == (3, 16, 16)
    assert len(bundle.train) == 9 and len(bundle.test) == 6
    image, label = bundle.test[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert label.dtype == torch.int64
    test_labels = [bundle.test[index][1].item() for index in range(len(bundle.test))]
    assert sorted(test_labels) == [0, 0, 1, 1, 2, 2]
    train_paths = {path for path, _ in bundle.train_eval.samples}
    test_paths = {path for path, _ in bundle.test.samples}
    assert not train_paths & test_paths
    assert len(train_paths | test_paths) == 15


def test_an_unreadable_image_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    """The folder check only lists files; a damaged one is found when it is read."""
    root = write_fake_image_folder(tmp_path / "tree", num_classes=2, images_per_class=4)
    bundle = _image_folder(root)
    path, _ = bundle.train_eval.samples[0]
    Path(path).write_bytes(b"not an image")
    with pytest.raises(DataError, match=rf"the image file {path} cannot be read"):
        bundle.train_eval[0]
    assert bundle.train_eval[1][0].shape == (3, 16, 16), "the other images still load"


def test_image_folder_with_test_root(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "train", num_classes=2, images_per_class=4)
    test_root = write_fake_image_folder(tmp_path / "val", num_classes=2, images_per_class=3)
    bundle = _image_folder(root, test_root=str(test_root))

    assert len(bundle.train) == 8 and len(bundle.test) == 6
    assert bundle.num_classes == 2


def test_image_folder_test_root_with_other_classes_is_a_data_error(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "train", num_classes=3)
    test_root = write_fake_image_folder(tmp_path / "val", num_classes=2)

    (test_root / "class_1").rename(test_root / "Class_1")
    with pytest.raises(DataError, match="data.test_root") as caught:
        _image_folder(root, num_classes=3, test_root=str(test_root))
    assert "only in data.test_root: 'Class_1'; only in data.root: 'class_1', 'class_2'" in str(
        caught.value
    )
    # As many classes, one of another name: its test labels would point at another class.
    same_count = write_fake_image_folder(tmp_path / "val3", num_classes=3)
    (same_count / "class_1").rename(same_count / "Class_1")
    with pytest.raises(DataError) as caught:
        _image_folder(root, num_classes=3, test_root=str(same_count))
    assert "only in data.test_root: 'Class_1'; only in data.root: 'class_1'." in str(caught.value)


def test_hidden_folders_and_files_are_neither_classes_nor_images(tmp_path: Path) -> None:
    """An (empty) `.ipynb_checkpoints/` made the tree fail; macOS `._x.png` files failed
    only when read, in the middle of training."""
    root = write_fake_image_folder(tmp_path / "tree", num_classes=2, images_per_class=4)
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".cache").mkdir()
    shutil.copy(root / "class_0" / "img_0.png", root / ".cache" / "img_0.png")
    (root / "class_0" / "._img_0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    bundle = _image_folder(root, num_classes=2)
    samples = bundle.train_eval.samples + bundle.test.samples
    assert len(samples) == 8 and {label for _, label in samples} == {0, 1}
    assert all(bundle.train_eval[index][0].shape == (3, 16, 16) for index in range(6))


def test_image_folder_root_that_is_a_file_says_so(tmp_path: Path) -> None:
    archive = tmp_path / "tiny-imagenet-200.zip"
    archive.write_bytes(b"PK")
    with pytest.raises(DataError, match="is a file, not a folder"):
        _image_folder(archive)


def test_evaluation_transform_crops_the_centre_instead_of_squashing(tmp_path: Path) -> None:
    """A 48 x 16 image of red | green | blue thirds becomes its green centre square."""
    root = write_fake_image_folder(tmp_path / "tree", num_classes=2, images_per_class=3)
    pixels = np.zeros((16, 48, 3), dtype=np.uint8)  # (H, W, 3)
    for third in range(3):
        pixels[:, 16 * third : 16 * (third + 1), third] = 255
    for path in root.glob("class_*/img_*.png"):
        Image.fromarray(pixels).save(path)
    bundle = _image_folder(root, num_classes=2)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    image = bundle.train_eval[0][0] * std + mean  # (3, 16, 16) in [0, 1]
    assert torch.allclose(image[1], torch.ones(16, 16), atol=0.02)
    assert image[0].abs().max() < 0.02 and image[2].abs().max() < 0.02


def test_image_folder_class_count_must_match_the_config(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "tree", num_classes=3)

    with pytest.raises(DataError, match="data.num_classes") as caught:
        _image_folder(root, num_classes=4)
    assert "has 3 class folders" in str(caught.value)


def test_image_folder_config_gives_the_default_feature_dim() -> None:
    config = TrainConfig(data=ImageFolderData(root="unused", num_classes=200))

    assert config.feature_dim == 199


@pytest.mark.parametrize("make_root", ["missing", "empty", "empty_class_folders"])
def test_image_folder_without_images_is_a_data_error(tmp_path: Path, make_root: str) -> None:
    root = tmp_path / "tree"
    if make_root != "missing":
        root.mkdir()
    if make_root == "empty_class_folders":
        (root / "cat").mkdir()
        (root / "dog").mkdir()

    with pytest.raises(DataError, match="data.root") as caught:
        _image_folder(root)
    assert str(root) in str(caught.value)


def test_image_folder_too_small_to_split_is_a_data_error(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "tree", num_classes=2, images_per_class=1)
    shutil.copy(root / "class_0" / "img_0.png", root / "class_0" / "img_1.png")

    with pytest.raises(DataError, match="data.test_fraction"):
        _image_folder(root)


def test_image_folder_augmentation_and_plain_train_eval(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "tree", num_classes=2, images_per_class=5)
    bundle = _image_folder(root, augment=True, seed=3)

    torch.manual_seed(0)
    first, _ = bundle.train[0]
    second, _ = bundle.train[0]
    assert first.shape == (3, 16, 16)
    assert not torch.equal(first, second)

    path, label = bundle.train_eval.samples[0]
    with Image.open(path) as image:
        expected = plain_transform(IMAGENET_MEAN, IMAGENET_STD, 16)(image.convert("RGB"))
    image_eval, label_eval = bundle.train_eval[0]
    assert torch.equal(image_eval, expected)
    assert label_eval.item() == label
    assert bundle.train[0][1].item() == label


def test_cifar_batch_with_code_is_refused(tmp_path: Path) -> None:
    """A planted pickle that would run code is refused, and the code never runs."""
    import os
    import pickle

    from hcl_study.data.cifar import read_batch

    marker = tmp_path / "hacked"

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}))
    with pytest.raises(DataError, match="refusing to load"):
        read_batch(path, b"labels", 10)
    assert not marker.exists()
