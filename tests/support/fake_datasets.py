"""Tiny on-disk copies of real data-set formats, for tests (nothing is downloaded).

- `write_fake_cifar` writes CIFAR-10 / CIFAR-100 in the official "python version"
  pickle format (the files of cifar-10-batches-py / cifar-100-python): written by Python 2's
  cPickle with protocol 2, so strings are Python 2 `str` and arrays are rebuilt through
  `numpy.core.multiarray._reconstruct`, byte for byte as in the originals.
- `write_fake_image_folder` writes a torchvision ImageFolder tree of PNGs.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

CifarName = Literal["cifar10", "cifar100"]

CIFAR_FOLDERS: dict[str, str] = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CIFAR_NUM_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100}
CIFAR10_TRAIN_BATCHES = 5


def _py2_str(data: bytes) -> bytes:
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data  # SHORT_BINSTRING
    return b"T" + struct.pack("<i", len(data)) + data  # BINSTRING


def _py2_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])  # BININT1
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)  # BININT2
    return b"J" + struct.pack("<i", value)  # BININT


def _py2_uint8_array(array: np.ndarray) -> bytes:
    # _reconstruct(ndarray, (0,), 'b'), then BUILD with its state
    # (1, shape, dtype('u1', 0, 1) with state (3, '|', None, None, None, -1, -1, 0), False, raw)
    shape = b"(" + b"".join(_py2_int(size) for size in array.shape) + b"t"
    dtype_state = b"(" + _py2_int(3) + _py2_str(b"|") + b"NNN" + b"J\xff\xff\xff\xff" * 2
    dtype = b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R"
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + _py2_int(0) + b"\x85" + _py2_str(b"b") + b"\x87R"
        + b"(" + _py2_int(1) + shape + dtype + dtype_state + _py2_int(0) + b"tb"
        + b"\x89" + _py2_str(array.tobytes()) + b"tb"
    )  # fmt: skip


def _py2_object(value: object) -> bytes:
    if isinstance(value, bytes):
        return _py2_str(value)
    if isinstance(value, int):
        return _py2_int(value)
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        return _py2_uint8_array(value)
    if isinstance(value, list):
        return b"](" + b"".join(_py2_object(item) for item in value) + b"e"
    if isinstance(value, dict):
        items = b"".join(_py2_object(key) + _py2_object(item) for key, item in value.items())
        return b"}(" + items + b"u"
    raise TypeError(f"no Python 2 pickle for {type(value).__name__}")


def python2_pickle(content: dict[bytes, object]) -> bytes:
    """`content` as Python 2's `cPickle.dumps(content, 2)` wrote the CIFAR files."""
    return b"\x80\x02" + _py2_object(content) + b"."


def _dump(path: Path, content: dict[bytes, object], *, python2: bool) -> None:
    path.write_bytes(python2_pickle(content) if python2 else pickle.dumps(content))


def _batch(
    rng: np.random.Generator, num_images: int, label_key: bytes, num_classes: int, offset: int
) -> dict[bytes, object]:
    labels = [(offset + index) % num_classes for index in range(num_images)]
    data = rng.integers(0, 256, size=(num_images, 3072), dtype=np.uint8)  # (N, 3072)
    return {b"data": data, label_key: labels, b"batch_label": b"fake"}


def write_fake_cifar(
    directory: str | Path,
    name: CifarName = "cifar10",
    *,
    num_train: int = 20,
    num_test: int = 10,
    nested: bool = False,
    seed: int = 0,
    python2: bool = True,
) -> Path:
    """Write a tiny CIFAR copy with random pixels; labels cycle 0, 1, ..., C - 1, 0, ...

    Args:
        directory: Where to write.
        name: `cifar10` (5 train batches, test_batch, batches.meta) or `cifar100` (train,
            test, meta).
        num_train: Training images in total (CIFAR-10 spreads them over the 5 batches;
            a multiple of 5 keeps the batches equal).
        num_test: Test images.
        nested: Put the files in the official sub-folder (`cifar-10-batches-py` or
            `cifar-100-python`) instead of directly in `directory`.
        seed: Seed of the random pixels.
        python2: Pickle as the originals (Python 2, protocol 2); False pickles with Python
            3's default protocol, as a copy re-saved by Python 3 would be.

    Returns:
        The folder to use as `data.root` (`directory` itself in both layouts).
    """
    root = Path(directory)
    folder = root / CIFAR_FOLDERS[name] if nested else root
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    num_classes = CIFAR_NUM_CLASSES[name]
    if name == "cifar10":
        parts = np.array_split(np.arange(num_train), CIFAR10_TRAIN_BATCHES)
        for index, part in enumerate(parts, start=1):
            offset = int(part[0]) if len(part) else 0
            batch = _batch(rng, len(part), b"labels", num_classes, offset)
            _dump(folder / f"data_batch_{index}", batch, python2=python2)
        test_batch = _batch(rng, num_test, b"labels", num_classes, 0)
        _dump(folder / "test_batch", test_batch, python2=python2)
        meta = {b"label_names": [f"class_{index}".encode() for index in range(num_classes)]}
        _dump(folder / "batches.meta", meta, python2=python2)
        return root
    for split, size in (("train", num_train), ("test", num_test)):
        batch = _batch(rng, size, b"fine_labels", num_classes, 0)
        batch[b"coarse_labels"] = [label // 5 for label in batch[b"fine_labels"]]
        _dump(folder / split, batch, python2=python2)
    _dump(
        folder / "meta",
        {
            b"fine_label_names": [f"fine_{index}".encode() for index in range(100)],
            b"coarse_label_names": [f"coarse_{index}".encode() for index in range(20)],
        },
        python2=python2,
    )
    return root


def fake_cifar_train_labels(name: CifarName, num_train: int) -> list[int]:
    """The training labels `write_fake_cifar` writes, in file order."""
    return [index % CIFAR_NUM_CLASSES[name] for index in range(num_train)]


def write_fake_image_folder(
    directory: str | Path,
    *,
    num_classes: int = 3,
    images_per_class: int = 5,
    image_size: tuple[int, int] = (12, 10),
    seed: int = 0,
) -> Path:
    """Write `directory/class_<k>/img_<i>.png` RGB images with random pixels.

    Args:
        directory: Root of the tree (created).
        num_classes: Number of class folders.
        images_per_class: PNGs per class folder.
        image_size: (width, height) of every image; deliberately not square.
        seed: Seed of the random pixels.

    Returns:
        The root of the tree.
    """
    root = Path(directory)
    rng = np.random.default_rng(seed)
    width, height = image_size
    for class_index in range(num_classes):
        class_dir = root / f"class_{class_index}"
        class_dir.mkdir(parents=True, exist_ok=True)
        for image_index in range(images_per_class):
            pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(class_dir / f"img_{image_index}.png")
    return root
