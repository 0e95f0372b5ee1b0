"""A variable of a file (Zarr, NetCDF, GRIB) that every process opens for itself: :class:`StoreVariable`.

:func:`~stpatch.data.adapters.xarray_io.from_xarray` builds its dask arrays on this class when it is
given a path. A ``StoreVariable`` holds only what opens the file (path, engine, variable name); the
open dataset is kept per process and dropped when pickled. So DataLoader workers, whether forked or
spawned, each open the store themselves on their first read (a forked worker never reads through
a file handle inherited from the parent, which HDF5 does not support), and pickling a data set
sends a few hundred bytes, never values or handles.

Indexing returns numpy values decoded by xarray (scale factors applied, fill values as NaN), exactly
what reading the variable through xarray gives.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["StoreVariable", "lazy_variable", "store_variables"]

#: one lock for every open and read of a NetCDF (HDF5) or GRIB file in this process: those libraries
#: are not thread-safe, and dask reads the chunks of a window in several threads
_LIBRARY_LOCK = threading.RLock()


class StoreVariable:
    """One variable of a file as a numpy-like, read-only array ``(dims of the variable)``.

    Args:
        path: the file or Zarr store.
        variable: the variable's name in it.
        engine: the xarray engine (None: chosen from the suffix, as :func:`open_xarray` does).
        shape, dtype: the variable's shape and decoded dtype (read once by the caller, so that making
            one costs no file access).
    """

    def __init__(self, path: str | Path, variable: str, engine: str | None, shape: tuple, dtype):
        self.path = str(path)
        self.variable = str(variable)
        self.engine = engine
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self._open: tuple[int, object] | None = None  # (pid, xarray Variable) of this process
        # dask reads chunks in several threads: one of them opens the file, the others wait for it;
        # the HDF5 and GRIB libraries behind NetCDF and GRIB files are not thread-safe at all, so
        # every open and read of such files in this process takes turns on one lock
        from .xarray_io import reads_as_zarr  # here: xarray_io imports this module

        self._lock = threading.Lock() if reads_as_zarr(self.path, engine) else _LIBRARY_LOCK

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def opened_in(self) -> int | None:
        """The process id that opened the file behind this object, or None while it is not open."""
        return None if self._open is None else self._open[0]

    def _variable(self):
        pid = os.getpid()
        with self._lock:
            if self._open is None or self._open[0] != pid:
                from .xarray_io import open_xarray

                ds = open_xarray(self.path, engine=self.engine)
                if self.variable not in ds.variables:
                    raise KeyError(f"{self.path}: variable {self.variable!r} is gone (the file changed since it was opened)")
                self._open = (pid, ds[self.variable].variable)
            return self._open[1]

    def __getitem__(self, key) -> np.ndarray:
        variable = self._variable()
        if self._lock is _LIBRARY_LOCK:
            with self._lock:
                return np.asarray(variable[key].values)
        return np.asarray(variable[key].values)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_open"] = None  # the receiving process opens the file itself
        state["_lock"] = state["_lock"] is _LIBRARY_LOCK  # locks do not pickle; the receiver makes its own
        return state

    def __setstate__(self, state: dict) -> None:
        library = state.pop("_lock")
        self.__dict__.update(state)
        self._lock = _LIBRARY_LOCK if library else threading.Lock()

    def __dask_tokenize__(self):
        # the same file, variable and modification time give the same dask names (reproducible graphs)
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            mtime = None
        return (type(self).__name__, self.path, self.variable, self.engine, self.shape, str(self.dtype), mtime)

    def __repr__(self) -> str:
        return f"StoreVariable({self.path!r}, {self.variable!r}, shape={self.shape}, dtype={self.dtype})"


def lazy_variable(da, path: str | Path, engine: str | None, time: str, steps: int):
    """``da`` (a variable of the file at ``path``) with its values replaced by a dask array over a
    :class:`StoreVariable`, chunked ``steps`` along ``time`` and whole along the other dims."""
    import dask.array as dsa

    chunks = tuple(int(steps) if d == time else -1 for d in da.dims)
    source = StoreVariable(path, da.name, engine, da.shape, da.dtype)
    # no dask lock: a StoreVariable locks what needs it (the reads of NetCDF and GRIB files)
    data = dsa.from_array(source, chunks=chunks, lock=False, asarray=True,
                          meta=np.empty((0,) * da.ndim, dtype=da.dtype))
    return da.copy(data=data)


def store_variables(array) -> list[StoreVariable]:
    """The :class:`StoreVariable` objects a dask (or dask-backed xarray) array reads from; empty for
    arrays that read no file (numpy, or dask over values already in memory)."""
    graph = getattr(array, "__dask_graph__", None)
    graph = graph() if callable(graph) else None
    found: list[StoreVariable] = []
    for node in dict(graph or {}).values():
        obj = getattr(node, "value", node)  # a task-spec DataNode holds the object in .value
        if isinstance(obj, StoreVariable) and all(obj is not f for f in found):
            found.append(obj)
    return found
