"""The IDX reader: round trips for every type, gzipped or not, and one clear error per defect."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeexp.tasks.idx import read_idx


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([0, 255, 7], dtype=np.uint8),
        np.array([[-128, 127]], dtype=np.int8),
        np.array([-300, 300], dtype=">i2"),
        np.array([[1 << 20, -5]], dtype=">i4"),
        np.array([0.5, -1.25], dtype=">f4"),
        np.array([np.pi], dtype=">f8"),
    ],
    ids=["uint8_3d", "uint8_1d", "int8", "int16", "int32", "float32", "float64"],
)
def test_round_trip(tmp_path: Path, write_idx, array: np.ndarray, gz: bool) -> None:
    path = write_idx(tmp_path / "data-idx", array, gz)
    tensor = read_idx(path)
    assert tuple(tensor.shape) == array.shape
    np.testing.assert_array_equal(tensor.numpy(), array)


def test_uint8_is_torch_uint8(tmp_path: Path, write_idx) -> None:
    path = write_idx(tmp_path / "labels", np.array([3, 1], dtype=np.uint8))
    assert read_idx(path).dtype == torch.uint8


def test_gzip_detected_by_content_not_name(tmp_path: Path, idx_bytes) -> None:
    path = tmp_path / "no-extension"
    path.write_bytes(gzip.compress(idx_bytes(np.array([9, 8], dtype=np.uint8))))
    assert read_idx(path).tolist() == [9, 8]


def _error(path: Path) -> str:
    with pytest.raises(ValueError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_truncated_data(tmp_path: Path, idx_bytes) -> None:
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(np.zeros((4, 5, 5), dtype=np.uint8))[:-10])
    message = _error(path)
    assert "truncated" in message and "need 100 data bytes, found 90" in message


def test_extra_data(tmp_path: Path, idx_bytes) -> None:
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(np.zeros((2, 3), dtype=np.uint8)) + b"\x00")
    assert "extra data" in _error(path)


def test_wrong_dims_header(tmp_path: Path, idx_bytes) -> None:
    """The header says 3 x 5 but the data holds 2 x 5: a size mismatch."""
    data = bytearray(idx_bytes(np.zeros((2, 5), dtype=np.uint8)))
    data[7] = 3
    path = tmp_path / "labels"
    path.write_bytes(bytes(data))
    assert "dimensions (3, 5) need 15 data bytes, found 10" in _error(path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08")
    assert "no complete header" in _error(path)
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    assert "truncated inside its header" in _error(path)


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "not-idx"
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    assert "wrong magic number 0x504b0304" in _error(path)


def test_unknown_type(tmp_path: Path) -> None:
    path = tmp_path / "odd-type"
    path.write_bytes(b"\x00\x00\x0a\x01\x00\x00\x00\x01\x00")
    assert "unknown data type 0x0A" in _error(path)


def test_truncated_gzip(tmp_path: Path, idx_bytes) -> None:
    path = tmp_path / "images.gz"
    compressed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8).reshape(10, 100)))
    path.write_bytes(compressed[: len(compressed) // 2])
    assert "truncated or corrupt gzip" in _error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read IDX file" in _error(tmp_path / "absent")
