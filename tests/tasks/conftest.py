"""Small IDX files written by the tests themselves (independent of the reader under test)."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}
IDX_NAMES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (big-endian header and data)."""
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = struct.pack(">BBBB", 0, 0, TYPE_CODES[dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write ``array`` as an IDX file at ``path`` (``+ .gz`` and gzipped if ``gz``)."""
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def fake_dataset(
    folder: Path, train: int = 60, test: int = 20, gz: bool = False, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write random 28x28 images with labels 0..9 in the four MNIST file names into ``folder``."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for (images_name, labels_name), count in zip(IDX_NAMES, (train, test), strict=True):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        write_idx(folder / images_name, images, gz)
        write_idx(folder / labels_name, labels, gz)
        arrays[images_name], arrays[labels_name] = images, labels
    return arrays


@pytest.fixture(name="idx_bytes")
def idx_bytes_fixture() -> Callable[[np.ndarray], bytes]:
    """:func:`idx_bytes` for tests."""
    return idx_bytes


@pytest.fixture(name="write_idx")
def write_idx_fixture() -> Callable[..., Path]:
    """:func:`write_idx` for tests."""
    return write_idx


@pytest.fixture
def make_dataset() -> Callable[..., dict[str, np.ndarray]]:
    """:func:`fake_dataset` for tests."""
    return fake_dataset
