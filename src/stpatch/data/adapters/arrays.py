"""Arrays in any common layout -> ``SpatioTemporalData``; the layout guess by rank; ``.npy``/``.npz``.

* :func:`from_numpy` - numpy, dask or torch arrays in one of :data:`LAYOUTS` (views, no copies).
* :func:`default_layout` - the layout an array of a given rank is read as, for a data kind.
* :func:`array_reader` - turns ``load(path) -> array`` into a reader for
  :func:`~stpatch.data.adapters.formats.register_format`; :func:`read_npy`, :func:`read_npz`,
  :func:`write_npy` and :func:`write_npz` are the built-in ``.npy``/``.npz`` entries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core import SpatioTemporalData, to_numpy

if TYPE_CHECKING:
    from .formats import Forecast

__all__ = ["LAYOUTS", "from_numpy", "default_layout", "array_reader", "read_npy", "read_npz"]

#: Layouts :func:`from_numpy` accepts: T time, C channel, H/W grid rows/columns, N sensors,
#: B a batch of independent sequences (one segment each).
LAYOUTS = ("TCHW", "THWC", "THW", "TNC", "TN", "BTCHW", "BTHWC", "BTHW", "BTNC", "BTN")

#: The layout an array of each rank is read as: for grid data, for sensor data, and when the kind
#: is unknown (then a 3-D array is a grid ``THW`` and a 2-D one a sensor table ``TN``).
_RANK_LAYOUTS: dict[str | None, dict[int, str]] = {
    "grid": {5: "BTCHW", 4: "TCHW", 3: "THW"},
    "sensor": {4: "BTNC", 3: "TNC", 2: "TN"},
    None: {5: "BTCHW", 4: "TCHW", 3: "THW", 2: "TN"},
}
_GRID_LAYOUTS = tuple(lay for lay in LAYOUTS if lay.endswith(("HW", "HWC")))


def default_layout(ndim: int, kind: str | None = None) -> str | None:
    """The layout an ``ndim``-D array is read as for data of ``kind`` (``"grid"``, ``"sensor"`` or None).

    A rank the kind has no layout for falls back to the kind-free guess (so that the caller sees the
    data's actual kind and can say it does not match); None when no layout fits.

    >>> default_layout(3, "grid"), default_layout(3, "sensor"), default_layout(3)
    ('THW', 'TNC', 'THW')
    >>> default_layout(4, "sensor"), default_layout(2, "grid"), default_layout(1)
    ('BTNC', 'TN', None)
    """
    if kind not in _RANK_LAYOUTS:
        raise ValueError(f"kind should be 'grid', 'sensor' or None, got {kind!r}")
    return _RANK_LAYOUTS[kind].get(ndim) or _RANK_LAYOUTS[None].get(ndim)


def _canonical(a, layout: str, who: str):
    """View of ``a`` (layout without B) in canonical layout, and the kind."""
    if a.ndim != len(layout):
        raise ValueError(f"{who}: layout {layout!r} expects {len(layout)} dims, found shape {tuple(a.shape)}")
    if layout == "TCHW":
        return a, "grid"
    if layout == "THWC":
        return np.moveaxis(a, -1, 1) if isinstance(a, np.ndarray) else a.transpose(0, 3, 1, 2), "grid"
    if layout == "THW":
        return a[:, None], "grid"
    if layout == "TNC":
        return a, "sensor"
    if layout == "TN":
        return a[:, :, None], "sensor"
    raise ValueError(f"{who}: unknown layout {layout!r}; expected one of {LAYOUTS}")


def from_numpy(
    array,
    layout: str = "TCHW",
    times=None,
    mask=None,
    null_value: float | None = None,
    channels=None,
    coords=None,
    adjacency=None,
    name: str = "array",
    attrs: dict | None = None,
) -> SpatioTemporalData:
    """Wrap arrays as ``SpatioTemporalData`` without copying.

    Parameters
    ----------
    array: numpy (or dask, or torch) array in ``layout``, or a list of such arrays (segments).
    layout: one of :data:`LAYOUTS`. ``"BT..."`` layouts make one segment per sequence.
    times: datetime64-like ``(T,)`` (shared by all sequences of a batch), ``(B, T)``, or a list
        per segment.
    mask: bool, same shape as ``array`` (True = observed).
    null_value: a value that means missing (e.g. 0 for traffic speeds).
    channels, coords, adjacency: see :class:`~stpatch.data.core.SpatioTemporalData`.

    >>> d = from_numpy(np.zeros((30, 8, 8)), layout="THW")
    >>> d.segments[0].shape
    (30, 1, 8, 8)
    """
    layout = layout.upper()
    if layout not in LAYOUTS:
        raise ValueError(f"{name}: unknown layout {layout!r}; expected one of {LAYOUTS}")
    if type(array).__module__.startswith("torch"):
        array = to_numpy(array)
    if mask is not None and type(mask).__module__.startswith("torch"):
        mask = to_numpy(mask)
    arrays = list(array) if isinstance(array, list | tuple) else None
    masks = list(mask) if isinstance(mask, list | tuple) else None
    base = layout[1:] if layout.startswith("B") else layout
    if arrays is None:
        if not hasattr(array, "ndim"):
            array = np.asarray(array)
        if array.ndim != len(layout):
            raise ValueError(
                f"{name}: layout {layout!r} expects {len(layout)} dims, found shape {tuple(array.shape)}"
            )
        if layout.startswith("B"):
            arrays = [array[b] for b in range(array.shape[0])]
            if mask is not None:
                mask = np.asarray(mask)
                if mask.shape != tuple(array.shape):
                    raise ValueError(
                        f"{name}: mask shape {mask.shape} differs from data shape {tuple(array.shape)}"
                    )
                masks = [mask[b] for b in range(mask.shape[0])]
        else:
            arrays = [array]
            masks = None if mask is None else [np.asarray(mask)]
    segs, kind = [], None
    for i, a in enumerate(arrays):
        if not hasattr(a, "ndim"):
            a = np.asarray(a)
        seg, kind = _canonical(a, base, f"{name} segment {i}")
        segs.append(seg)
    if masks is not None:
        if len(masks) != len(segs):
            raise ValueError(f"{name}: {len(segs)} segments but {len(masks)} masks")
        cm = []
        for i, m in enumerate(masks):
            m = np.asarray(m, dtype=bool)
            if m.shape != tuple(arrays[i].shape):
                raise ValueError(
                    f"{name}: mask {i} shape {m.shape} differs from data shape {tuple(arrays[i].shape)}"
                )
            cm.append(_canonical(m, base, name)[0])
        masks = cm
    if times is not None:
        if isinstance(times, list | tuple) and len(times) == len(segs) and len(segs) > 1:
            times = list(times)
        else:
            t = np.asarray(times)
            if t.ndim == 2:
                times = [t[b] for b in range(t.shape[0])]
            elif len(segs) > 1:
                times = [t] * len(segs)
            else:
                times = [t]
    return SpatioTemporalData(
        kind=kind,
        segments=segs,
        times=times,
        mask=masks,
        channels=channels,
        coords=coords,
        adjacency=adjacency,
        null_value=null_value,
        name=name,
        attrs=dict(attrs or {}),
    )


# ============================================================================ array files
def _from_file(
    path: Path, array, layout, kind, what="an array of shape", times=None, mask=None, lat=None, lon=None, **options
) -> SpatioTemporalData:
    """``array`` read from ``path`` in ``layout`` (default: guessed from its rank for ``kind``)."""
    layout = layout or default_layout(array.ndim, kind)
    if layout is None:
        raise ValueError(f"{path}: cannot guess the layout of {what} {array.shape}; pass layout=...")
    coords = None
    if lat is not None and lon is not None and layout.upper() in _GRID_LAYOUTS:
        coords = {"lat": lat, "lon": lon}
    return from_numpy(
        array,
        layout=layout,
        times=times,
        mask=mask,
        coords=coords,
        name=path.stem,
        attrs={"source_file": str(path)},
        **options,
    )


def array_reader(load: Callable[[Path], np.ndarray]) -> Callable[..., SpatioTemporalData]:
    """A reader for ``register_format`` from a function that loads a file as one array.

    The array is read in the caller's ``layout``, else in :func:`default_layout` of its rank for the
    caller's ``kind``; other options go to :func:`from_numpy` (``null_value``, ``channels``...).

    >>> reader = array_reader(np.loadtxt)  # e.g. register_format(".txt", reader=reader)
    """

    def read(path: Path, layout: str | None = None, kind: str | None = None, **options) -> SpatioTemporalData:
        return _from_file(path, load(path), layout, kind, **options)

    read.__doc__ = f"Read a file with {getattr(load, '__qualname__', load)} as one array."
    return read


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise ValueError(f"{path}: cannot read as .npy, the file is corrupt or truncated ({e})") from e


#: ``.npy``: one array, memory-mapped.
read_npy = array_reader(_load_npy)

_NPZ_KEYS = ("x", "data", "array", "forecast")
_NPZ_EXTRAS = ("times", "time", "mask", "lat", "lon")


def read_npz(
    path: Path, layout: str | None = None, kind: str | None = None, key: str | None = None, **options
) -> SpatioTemporalData:
    """An ``.npz`` holding the array under ``key`` (default ``x``, ``data``, ``array`` or ``forecast``,
    or its only array), optionally ``times``, ``mask``, ``lat``, ``lon``."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            content = {k: z[k] for k in z.files}
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read as .npz, the file is corrupt or truncated ({e})") from e
    key = key or next((k for k in _NPZ_KEYS if k in content), None)
    if key is None:
        arrays = [k for k in content if k not in _NPZ_EXTRAS]
        if len(arrays) != 1:
            raise ValueError(
                f"{path}: expected an array named x/data/array/forecast (or a single array), found {list(content)}"
            )
        key = arrays[0]
    if key not in content:
        raise ValueError(f"{path}: no array {key!r}; the file holds {list(content)}")
    return _from_file(
        path,
        content[key],
        layout,
        kind,
        what=f"{key!r} with shape",
        times=content.get("times", content.get("time")),
        mask=content.get("mask"),
        lat=content.get("lat"),
        lon=content.get("lon"),
        **options,
    )


def write_npy(tmp: Path, forecast: Forecast) -> None:
    """The forecast array as ``.npy``."""
    np.save(tmp, forecast.array)


def write_npz(tmp: Path, forecast: Forecast) -> None:
    """The forecast as ``forecast`` (and ``times`` when known) in an ``.npz``."""
    extra = {} if forecast.times is None else {"times": forecast.times}
    np.savez(tmp, forecast=forecast.array, **extra)
