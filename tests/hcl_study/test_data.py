"""Data loaders: latent-class model, digits, CIFAR copies and ImageFolder trees."""

from __future__ import annotations

import os
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_datasets import fake_cifar_train_labels, write_fake_cifar, write_fake_image_folder
from PIL import Image
from sklearn.datasets import load_digits as sklearn_load_digits
from torch.utils.data import TensorDataset
from torchvision import transforms

from hcl_study.config import (
    CifarData,
    DigitsData,
    ImageFolderData,
    LatentClassData,
    TrainConfig,
)
from hcl_study.data import DataBundle, check_data_available, load_dataset
from hcl_study.data.cifar import LAYOUTS, read_batch
from hcl_study.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    plain_transform,
    simclr_transform,
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


def test_latent_class_follows_the_documented_draws_from_one_generator() -> None:
    """mu = N(0, sigma_mu^2) (C, D), then per split a shuffled balanced label vector and
    N(0, sigma^2) noise, all from `default_rng(seed)` in that order, train before test: a
    given seed names the same data set in every run and version."""
    config = LatentClassData(
        num_classes=5, input_dim=4, num_train=103, num_test=20, class_spread=2.0, noise=0.5
    )
    bundle = load_dataset(config)
    rng = np.random.default_rng(config.seed)
    means = rng.normal(0.0, 2.0, size=(5, 4))  # (C, D)
    for split, size in ((bundle.train, 103), (bundle.test, 20)):
        counts = [size // 5 + (label < size % 5) for label in range(5)]
        labels = rng.permutation(np.repeat(np.arange(5), counts))  # (N,)
        x = means[labels] + rng.normal(0.0, 0.5, size=(size, 4))  # (N, D)
        assert torch.equal(split.tensors[1], torch.from_numpy(labels))
        assert torch.allclose(split.tensors[0], torch.from_numpy(x).float())


def test_latent_class_labels_are_shuffled_and_test_rows_are_new_draws() -> None:
    config = LatentClassData(num_classes=5, input_dim=4, num_train=100, num_test=100, seed=0)
    bundle = load_dataset(config)
    x, y = bundle.train.tensors
    x_test, y_test = bundle.test.tensors

    assert torch.unique(y[:20]).numel() > 1, "sorted labels would start with 20 zeros"
    assert torch.unique(y_test[:20]).numel() > 1
    shared_rows = (x_test[:, None, :] == x[None, :, :]).all(dim=2)  # (100, 100)
    assert not shared_rows.any()


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


def test_digits_test_fraction_is_honoured() -> None:
    bundle = load_dataset(DigitsData(test_fraction=0.1, seed=0))

    assert len(bundle.test) == 180  # ceil(0.1 * 1797)
    assert len(bundle.train) == 1617


def test_digits_test_set_is_standardized_with_the_training_statistics() -> None:
    """One affine map per pixel for both splits, so a pixel's standardized values take as
    many distinct values as its raw intensities (0..16) do; standardizing the test split
    with its own mean would shift its values off the training ones."""
    raw, _ = sklearn_load_digits(return_X_y=True)  # (1797, 64)
    bundle = load_dataset(DigitsData(seed=0))
    x, x_test = bundle.train.tensors[0], bundle.test.tensors[0]
    informative = (x.std(dim=0) > 0).nonzero().flatten().tolist()

    assert len(informative) >= 60
    for column in informative:
        values = torch.cat([x[:, column], x_test[:, column]]).numpy()
        assert len(np.unique(values.round(4))) == len(np.unique(raw[:, column])), column


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
        (np.zeros((2, 3072), dtype=np.uint8), [0, None], "type object (the first: [0, None])"),
        (np.zeros((2, 3072), dtype=np.uint8), [b"cat", b"dog"], "[b'cat', b'dog']); a 10-class"),
        (np.zeros((2, 3072), dtype=np.uint8), [0], "labels of shape (1,); expected (N, 3072)"),
        (np.zeros((2, 100), dtype=np.uint8), [0, 1], "shape (2, 100)"),
        (np.zeros((2, 6144), dtype=np.uint8), [0, 1], "shape (2, 6144)"),
    ],
)
def test_cifar_batch_with_other_data_or_labels_is_a_data_error(
    tmp_path: Path, data: np.ndarray, labels: list[object], expected: str
) -> None:
    """Such a batch used to be cast to uint8 (wrapping values) or fail inside training;
    None or bytes labels crashed with a TypeError while the message was being built."""
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


def test_cifar10_test_batch_with_label_10_is_refused(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, "cifar10", python2=False)
    batch = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 10]}
    (root / "test_batch").write_bytes(pickle.dumps(batch))

    with pytest.raises(DataError, match="test_batch' holds labels from 0 to 10"):
        load_dataset(CifarData(name="cifar10", root=str(root)))


def test_cifar_partial_root_names_every_missing_file(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, "cifar10")
    (root / "data_batch_2").unlink()
    (root / "data_batch_4").unlink()

    with pytest.raises(DataError, match="missing data_batch_2, data_batch_4\\."):
        load_dataset(CifarData(name="cifar10", root=str(root)))


@pytest.mark.parametrize("content", ["no_label_key", "empty_file", "truncated", "a_list"])
def test_unreadable_cifar_batch_is_a_data_error_naming_the_file(
    tmp_path: Path, content: str
) -> None:
    """KeyError, EOFError, UnpicklingError and TypeError while reading are DataErrors."""
    root = write_fake_cifar(tmp_path, "cifar10")
    path = root / "data_batch_3"
    if content == "no_label_key":
        path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), dtype=np.uint8)}))
    elif content == "empty_file":
        path.write_bytes(b"")
    elif content == "truncated":
        path.write_bytes(path.read_bytes()[:50])
    else:
        path.write_bytes(pickle.dumps([1, 2]))

    with pytest.raises(DataError, match=re.escape(f"'{path}' is not a readable CIFAR batch")):
        load_dataset(CifarData(name="cifar10", root=str(root)))


# Published per-channel (R, G, B) statistics of the training images.
PUBLISHED_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_is_normalized_with_the_published_channel_statistics(
    tmp_path: Path, name: str
) -> None:
    """A first training image of red 255, green 0, blue 128 (planes in R, G, B order)."""
    root = write_fake_cifar(tmp_path, name, num_train=5, num_test=5, python2=False)
    data = np.zeros((1, 3072), dtype=np.uint8)
    data[0, :1024], data[0, 2048:] = 255, 128
    label_key = LAYOUTS[name].label_key
    first_file = "data_batch_1" if name == "cifar10" else "train"
    (root / first_file).write_bytes(pickle.dumps({b"data": data, label_key: [3]}))
    bundle = load_dataset(CifarData(name=name, root=str(root), augment=True))
    mean, std = PUBLISHED_STATS[name]

    expected = (torch.tensor([255.0, 0.0, 128.0]) / 255 - torch.tensor(mean)) / torch.tensor(std)
    image = bundle.train_eval[0][0]  # (3, 32, 32)
    assert torch.allclose(image, expected.view(3, 1, 1).expand(3, 32, 32), atol=1e-5)
    normalize = bundle.train.transform.transforms[-1]
    assert isinstance(normalize, transforms.Normalize)
    assert tuple(normalize.mean) == mean and tuple(normalize.std) == std


def test_cifar_subset_applies_to_the_augmented_training_set(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, "cifar10", num_train=20)
    bundle = load_dataset(CifarData(name="cifar10", root=str(root), subset=7, augment=True))

    assert len(bundle.train) == 7 and len(bundle.train_eval) == 7
    assert [bundle.train[index][1].item() for index in range(7)] == list(range(7))


def test_check_data_available_reports_a_missing_cifar_copy(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(f"data.root: CIFAR-100 folder '{missing}'")):
        check_data_available(CifarData(name="cifar100", root=str(missing)))


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


def test_images_in_hidden_sub_folders_of_a_class_are_not_samples(tmp_path: Path) -> None:
    """torchvision walks class folders recursively: `class_0/.ipynb_checkpoints/*.png`
    were samples. Visible sub-folders still count, as in torchvision."""
    root = write_fake_image_folder(tmp_path / "tree", num_classes=2, images_per_class=4)
    (root / "class_0" / ".ipynb_checkpoints").mkdir()
    shutil.copy(
        root / "class_0" / "img_0.png",
        root / "class_0" / ".ipynb_checkpoints" / "img_0-checkpoint.png",
    )
    (root / "class_1" / "more").mkdir()
    shutil.copy(root / "class_1" / "img_0.png", root / "class_1" / "more" / "img_9.png")
    bundle = _image_folder(root)
    paths = sorted(path for path, _ in bundle.train_eval.samples + bundle.test.samples)

    assert len(paths) == 9
    assert str(root / "class_1" / "more" / "img_9.png") in paths
    assert not [path for path in paths if "ipynb" in path]


def test_image_folder_skips_non_image_files(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "tree", num_classes=2, images_per_class=4)
    (root / "class_1" / "notes.txt").write_text("taken on 2024-05-01\n")
    bundle = _image_folder(root)
    paths = [path for path, _ in bundle.train_eval.samples + bundle.test.samples]

    assert len(paths) == 8
    assert all(path.endswith(".png") for path in paths)


def test_image_folder_test_images_get_the_plain_transform(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "tree", num_classes=2, images_per_class=5)
    bundle = _image_folder(root, augment=True)
    path, _ = bundle.test.samples[0]
    with Image.open(path) as image:
        expected = plain_transform(IMAGENET_MEAN, IMAGENET_STD, 16)(image.convert("RGB"))

    torch.manual_seed(0)
    assert torch.equal(bundle.test[0][0], expected)
    assert torch.equal(bundle.test[0][0], expected)


def test_grayscale_and_rgba_images_load_as_rgb(tmp_path: Path) -> None:
    """Grey 200 becomes (200, 200, 200); RGBA (255, 0, 128, 50) drops its alpha. Both are
    normalized with the published ImageNet statistics."""
    root = write_fake_image_folder(tmp_path / "tree", num_classes=2, images_per_class=4)
    Image.fromarray(np.full((10, 12), 200, dtype=np.uint8)).save(root / "class_0" / "img_0.png")
    rgba = np.tile(np.array([255, 0, 128, 50], dtype=np.uint8), (10, 12, 1))  # (H, W, 4)
    Image.fromarray(rgba).save(root / "class_0" / "img_1.png")
    bundle = _image_folder(root, test_root=str(root))
    indices = {path: index for index, (path, _) in enumerate(bundle.test.samples)}
    imagenet_mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    imagenet_std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    for name, pixel in (("img_0.png", [200.0] * 3), ("img_1.png", [255.0, 0.0, 128.0])):
        image = bundle.test[indices[str(root / "class_0" / name)]][0]  # (3, 16, 16)
        expected = (torch.tensor(pixel).view(3, 1, 1) / 255 - imagenet_mean) / imagenet_std
        assert image.shape == (3, 16, 16)
        assert torch.allclose(image, expected.expand(3, 16, 16), atol=1e-5), name


def test_image_folder_classes_are_numbered_in_sorted_order(tmp_path: Path) -> None:
    names = ["zebra", "apple", "mango", "kiwi", "banana", "cherry"]
    root = write_fake_image_folder(tmp_path / "tree", num_classes=6, images_per_class=3)
    for index, name in enumerate(names):
        (root / f"class_{index}").rename(root / name)
    bundle = _image_folder(root, num_classes=6, test_root=str(root))

    labels = {Path(path).parent.name: label for path, label in bundle.test.samples}
    assert labels == {"apple": 0, "banana": 1, "cherry": 2, "kiwi": 3, "mango": 4, "zebra": 5}


def test_image_folder_split_depends_on_the_seed(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "tree", num_classes=3, images_per_class=10)

    def test_paths(seed: int) -> set[str]:
        return {path for path, _ in _image_folder(root, num_classes=3, seed=seed).test.samples}

    assert test_paths(0) == test_paths(0)
    assert test_paths(0) != test_paths(1)
    assert len(test_paths(1)) == 6


def test_missing_test_root_is_named_in_the_error(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "train", num_classes=2)
    missing = tmp_path / "val"

    with pytest.raises(DataError, match=re.escape(f"data.test_root: image folder '{missing}'")):
        _image_folder(root, test_root=str(missing))


def test_image_folder_with_one_class_needs_at_least_two(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "tree", num_classes=1)

    with pytest.raises(DataError, match="has 1 class folder; contrastive classes need at least 2"):
        _image_folder(root, num_classes=2)


def test_image_folder_root_under_home_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_fake_image_folder(tmp_path / "tree", num_classes=2, images_per_class=4)
    bundle = _image_folder(Path("~/tree"))

    assert len(bundle.train) + len(bundle.test) == 8
    assert bundle.test.samples[0][0].startswith(str(tmp_path / "tree"))


@pytest.mark.parametrize(
    ("num_classes", "listed"),
    [
        (6, "'class_1', 'class_2', 'class_3', 'class_4', 'class_5'. "),
        (7, "'class_1', 'class_2', 'class_3', 'class_4', 'class_5' and 1 more. "),
    ],
)
def test_class_mismatch_lists_five_names_then_counts(
    tmp_path: Path, num_classes: int, listed: str
) -> None:
    root = write_fake_image_folder(tmp_path / "train", num_classes=num_classes)
    test_root = write_fake_image_folder(tmp_path / "val", num_classes=1)

    with pytest.raises(DataError) as caught:
        _image_folder(root, num_classes=num_classes, test_root=str(test_root))
    assert f"only in data.root: {listed}" in str(caught.value)


def test_check_data_available_reports_a_missing_image_folder(tmp_path: Path) -> None:
    missing = tmp_path / "tree"
    with pytest.raises(DataError, match=re.escape(f"data.root: image folder '{missing}'")):
        check_data_available(ImageFolderData(root=str(missing), num_classes=2))


# --- transforms ---------------------------------------------------------------------------


def test_simclr_augmentation_recipe() -> None:
    """SimCLR's CIFAR recipe: RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3), flip (p=0.5),
    colour jitter (0.4, 0.4, 0.4, 0.1) with p=0.8, grayscale with p=0.2, then normalize."""
    mean, std = (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)
    steps = simclr_transform(mean, std, 24).transforms
    kinds: list[type] = [
        transforms.RandomResizedCrop,
        transforms.RandomHorizontalFlip,
        transforms.RandomApply,
        transforms.RandomGrayscale,
        transforms.ToTensor,
        transforms.Normalize,
    ]

    assert [type(step) for step in steps] == kinds
    crop, flip, jitter_step, grayscale, _, normalize = steps
    assert crop.size == (24, 24) and crop.scale == (0.08, 1.0)
    assert crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert flip.p == 0.5
    assert jitter_step.p == 0.8 and len(jitter_step.transforms) == 1
    jitter = jitter_step.transforms[0]
    assert isinstance(jitter, transforms.ColorJitter)
    assert jitter.brightness == jitter.contrast == jitter.saturation == pytest.approx((0.6, 1.4))
    assert jitter.hue == pytest.approx((-0.1, 0.1))
    assert grayscale.p == 0.2
    assert tuple(normalize.mean) == mean and tuple(normalize.std) == std


def test_evaluation_transform_resizes_before_cropping() -> None:
    """A black 64 x 64 image with a white 16 x 16 centre, at size 16: shrunk as a whole it
    keeps 1/16 white and black corners; cropping first would keep only the white centre."""
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)  # (H, W, 3)
    pixels[24:40, 24:40] = 255
    image = plain_transform((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 16)(Image.fromarray(pixels))

    assert image.shape == (3, 16, 16)
    assert image.mean().item() == pytest.approx(1 / 16, abs=1e-3)
    assert image[:, :4, :4].abs().max() == 0


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


@pytest.mark.parametrize("function", ["eval", "exec", "numpy.savetxt"])
def test_cifar_batch_calling_builtins_or_other_numpy_functions_is_refused(
    tmp_path: Path, function: str
) -> None:
    """Only numpy's array rebuilding is allowed: not builtins, not any other numpy function
    (numpy.savetxt would write a file)."""
    marker = tmp_path / "hacked"
    code = f"open({str(marker)!r}, 'w').close()"
    calls: dict[str, tuple[Callable[..., object], tuple[object, ...]]] = {
        "eval": (eval, (code,)),
        "exec": (exec, (code,)),
        "numpy.savetxt": (np.savetxt, (str(marker), np.zeros(1))),
    }

    class Payload:
        def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
            return calls[function]

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}))
    name = function if "." in function else f"builtins.{function}"
    with pytest.raises(DataError, match=re.escape(f"refusing to load {name} from a CIFAR")):
        read_batch(path, b"labels", 10)
    assert not marker.exists()
    assert os.listdir(tmp_path) == ["data_batch_1"]
