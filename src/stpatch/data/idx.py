"""A small reader for the IDX format of the MNIST files (optionally gzip-compressed).

Format: 2 zero bytes, a type byte, a byte with the number of dimensions, the dimensions as
big-endian int32, then the values in C order (big-endian for multi-byte types).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx"]

_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (``.gz`` or not, detected from the content) into a numpy array.

    Raises FileNotFoundError when missing and ValueError naming the file when the content is not
    IDX, the gzip stream is corrupt, or the file is truncated.

    Returns
    -------
    array with the shape stored in the header, e.g. ``(60000, 28, 28)`` uint8 for MNIST images.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(
                f"{path}: corrupt or truncated gzip stream ({e}); delete it and download it again"
            ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise ValueError(
            f"{path}: not an IDX file (expected magic bytes 00 00 <type> <ndim>, found {raw[:4].hex(' ') or 'nothing'})"
        )
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header (expected {header} bytes, found {len(raw)})")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    need = int(np.prod(shape)) * dtype.itemsize
    have = len(raw) - header
    if have < need:
        raise ValueError(
            f"{path}: truncated IDX data: header says shape {shape} of {dtype} ({need} bytes), "
            f"found {have} bytes; delete it and download it again"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else arr
