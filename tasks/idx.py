"""A small reader for IDX files (the MNIST format), gzipped or not.

Layout (all integers big-endian): two zero bytes, one type byte, one byte ``ndim``, then ``ndim``
unsigned 32-bit dimension sizes, then the data in C order. Type bytes: ``0x08`` unsigned byte,
``0x09`` signed byte, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64.

Gzip is recognised by its magic bytes, not by the file name. Every problem (unreadable or truncated
file, wrong magic number, unknown type, data size not matching the dimensions) is one
``ValueError`` naming the file and what is wrong.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

GZIP_MAGIC = b"\x1f\x8b"
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
HEADER_BYTES = 4
DIM_BYTES = 4


def read_file_bytes(path: Path) -> bytes:
    """The file's content, decompressed if it is gzip; ``ValueError`` naming the file otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read IDX file {path}: {error.strerror or error}") from error
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise ValueError(f"IDX file {path} is a truncated or corrupt gzip file ({error})") from (
            error
        )


def parse_idx(data: bytes, path: Path) -> np.ndarray:
    """Parse the IDX bytes ``data`` (read from ``path``, named in errors) into an array."""
    if len(data) < HEADER_BYTES:
        raise ValueError(f"IDX file {path} is truncated: {len(data)} bytes, no complete header")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"IDX file {path} has a wrong magic number 0x{data[:4].hex()} "
            "(an IDX file starts with two zero bytes, a type byte and the number of dimensions)"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        valid = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise ValueError(
            f"IDX file {path} has unknown data type 0x{type_code:02X} (valid: {valid})"
        )
    if ndim == 0:
        raise ValueError(f"IDX file {path} declares 0 dimensions (must be >= 1)")
    data_start = HEADER_BYTES + DIM_BYTES * ndim
    if len(data) < data_start:
        raise ValueError(f"IDX file {path} is truncated inside its header ({ndim} dimensions)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=HEADER_BYTES))
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize
    found = len(data) - data_start
    if found != expected:
        problem = "is truncated" if found < expected else "has extra data"
        raise ValueError(
            f"IDX file {path} {problem}: dimensions {dims} need {expected} data bytes, "
            f"found {found}"
        )
    return np.frombuffer(data, dtype, offset=data_start).reshape(dims)


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (gzipped or not) into a tensor of its dimensions.

    Unsigned bytes become ``torch.uint8``; the other types their native-endian torch equivalent.
    """
    path = Path(path)
    array = parse_idx(read_file_bytes(path), path)
    return torch.from_numpy(array.astype(array.dtype.newbyteorder("="), copy=True))
