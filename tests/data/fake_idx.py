"""Small Fashion-MNIST-shaped IDX files the tests (and CPU smoke runs) write themselves."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 0x0000080N, one big-endian uint32 per dimension, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    blob = idx_bytes(array)
    path = Path(f"{path}.gz") if gz else Path(path)
    path.write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
    return path


def fake_split(per_class: int, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels): `per_class` images of each of 10 classes, shuffled; each class a
    bright blob at its own place on a black background, so classes differ visibly."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), per_class))
    images = rng.integers(0, 40, (len(labels), size, size), dtype=np.uint8)
    for image, label in zip(images, labels):
        r, c = divmod(int(label), 5)
        top, left = 2 + r * (size // 2 - 2), 1 + c * (size // 5)
        image[top:top + size // 3, left:left + max(size // 6, 2)] = 200 + label * 5
    return images, labels


def write_fashion_mnist_idx(folder: Path, train_per_class: int = 3, test_per_class: int = 2, gz: bool = False,
                            size: int = 28) -> Path:
    """The four Fashion-MNIST IDX files in `folder` (made if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_class, seed in (("train", train_per_class, 0), ("test", test_per_class, 1)):
        images, labels = fake_split(per_class, size, seed)
        write_idx(folder / NAMES[split][0], images, gz)
        write_idx(folder / NAMES[split][1], labels, gz)
    return folder
