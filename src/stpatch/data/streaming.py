"""Streaming passes over arrays larger than memory: blocks of time steps, aligned with the chunks.

Every pass that looks at all the values of a split (the scaler's statistics, the observed steps behind
window dropping, the data profile and the data guard) reads the data through :func:`time_blocks` / :func:`read_blocks`, so at
most one block of ``max_elements`` values (plus the pass's own temporaries) is in memory at a time,
however large the store. For lazy (dask) arrays the blocks end on the dask chunks' boundaries where
they can, so that each stored chunk is read once per pass instead of once per block that touches it.

>>> import numpy as np
>>> list(time_blocks(np.zeros((10, 4)), max_elements=12))
[(0, 3), (3, 6), (6, 9), (9, 10)]
>>> import dask.array as da
>>> list(time_blocks(da.zeros((10, 4), chunks=(4, 4)), max_elements=12))
[(0, 3), (3, 4), (4, 7), (7, 10)]
>>> list(time_blocks(da.zeros((10, 4), chunks=(2, 4)), 1, 9, max_elements=16))
[(1, 4), (4, 8), (8, 9)]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .core import to_numpy

__all__ = ["BLOCK_ELEMENTS", "time_chunk_bounds", "time_blocks", "read_blocks"]

#: Values per block of a streaming pass: 2 Mi values, 16 MiB as float64 (a pass holds a few such
#: temporaries; larger blocks save little time, the per-block overhead being a few milliseconds).
BLOCK_ELEMENTS = 1 << 21


def time_chunk_bounds(array) -> np.ndarray | None:
    """The step indices where the dask chunks of ``array`` (dask, or dask-backed xarray) begin along
    axis 0, ending with its length; None for arrays without chunks (numpy)."""
    chunks = getattr(array, "chunks", None)
    if not chunks or not isinstance(chunks, tuple) or not isinstance(chunks[0], tuple):
        return None
    return np.concatenate([[0], np.cumsum(chunks[0])]).astype(np.int64)


def time_blocks(array, start: int = 0, stop: int | None = None,
                max_elements: int | None = None) -> Iterator[tuple[int, int]]:
    """Consecutive ``(a, b)`` step ranges covering ``[start, stop)`` of ``array`` along axis 0.

    A block holds at most ``max_elements`` values (default :data:`BLOCK_ELEMENTS`; at least one step).
    Lazy arrays are cut on their dask chunks' boundaries: whole chunks are grouped while they fit, and a
    chunk larger than a block is split into blocks that stay inside it.
    """
    n = int(array.shape[0])
    stop = n if stop is None else min(int(stop), n)
    per_step = int(np.prod(array.shape[1:])) or 1
    cap = max(1, int(BLOCK_ELEMENTS if max_elements is None else max_elements) // per_step)
    bounds = time_chunk_bounds(array)
    a = int(start)
    while a < stop:
        b = min(stop, a + cap)
        if bounds is not None:
            # the last chunk boundary inside (a, b], else the next one if it comes before b
            inside = bounds[(bounds > a) & (bounds <= b)]
            if inside.size:
                b = int(inside[-1])
        yield a, b
        a = b


def read_blocks(array, mask=None, null_value: float | None = None, start: int = 0, stop: int | None = None,
                dtype=None) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """``(a, b, values, valid)`` for the :func:`time_blocks` of ``array[start:stop]``, read into numpy.

    ``values`` is ``array[a:b]`` (as ``dtype`` when given); ``valid`` is bool like it: finite (for
    floats), ``mask`` True (an array shaped like ``array``, or None) and not ``null_value``.
    """
    for a, b in time_blocks(array, start, stop):
        x = to_numpy(array[a:b])
        if dtype is not None:
            x = x.astype(dtype, copy=False)
        valid = np.isfinite(x) if np.issubdtype(x.dtype, np.floating) else np.ones(x.shape, bool)
        if mask is not None:
            valid &= to_numpy(mask[a:b]).astype(bool, copy=False)
        if null_value is not None:
            valid &= x != null_value
        yield a, b, x, valid
