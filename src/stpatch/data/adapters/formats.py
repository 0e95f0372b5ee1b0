"""The one table of file formats: a suffix -> a reader and/or a writer.

:func:`read_array_file` (the input of ``stpatch predict``) and :func:`write_forecast` (its output)
pick what to do with a file through :data:`FORMATS` only.  Built in (see the bottom of this module):

* ``.npy`` - one array (memory-mapped); read, written.
* ``.npz`` - an array (``x``, ``data``, ``array``, ``forecast``) with ``times``, ``mask``, ``lat``,
  ``lon``; read, written.
* ``.nc .nc4 .netcdf .cdf .h5 .hdf5`` - NetCDF through :func:`from_xarray`; read, written.
* ``.zarr``, and any folder whose suffix no format claims - Zarr through :func:`from_xarray`; read.
* ``.grib .grb .grib2 .grb2 .grib1`` - GRIB through :func:`from_xarray` (cfgrib); read.
* ``.csv`` - sensor tables through :func:`from_csv`; read, written (wide).  ``.txt`` (read as CSV)
  and ``.tsv`` (tab-separated); read.
* ``.gif .mp4 .avi .mov .mkv .webm .apng .png`` - videos through :func:`from_video`; read.

Raw arrays take their layout from the caller, or from their rank and the data kind
(:func:`~stpatch.data.adapters.arrays.default_layout`); the other formats know their own.

Adding a format is one module that calls :func:`register_format` (a module put in the
``stpatch.data.adapters`` package is imported with it, so it needs no other edit)::

    import numpy as np
    from stpatch.data.adapters.arrays import array_reader
    from stpatch.data.adapters.formats import register_format

    register_format(".dat", reader=array_reader(np.loadtxt), name="text array")

A reader is ``reader(path, layout=None, kind=None, **options) -> SpatioTemporalData`` (``layout`` and
``kind`` matter to raw arrays: :func:`~stpatch.data.adapters.arrays.array_reader` applies them;
:func:`file_reader` wraps a function that decides them itself).  A writer is
``writer(tmp_path, forecast: Forecast) -> None``; it writes to a temporary path that
:mod:`stpatch.atomic` renames over the target once the writer returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...atomic import atomic_path
from ..core import SpatioTemporalData, to_numpy
from . import arrays, tables, video, xarray_io

__all__ = [
    "Format",
    "Forecast",
    "FORMATS",
    "register_format",
    "file_reader",
    "format_for",
    "read_array_file",
    "write_forecast",
]

KINDS = ("grid", "sensor")
_SHAPES = {"grid": "(T, C, H, W)", "sensor": "(T, N, C)"}


@dataclass(frozen=True)
class Format:
    """One entry of :data:`FORMATS`: what reads and/or writes files of these suffixes."""

    name: str
    suffixes: tuple[str, ...]
    reader: Callable[..., SpatioTemporalData] | None = None
    writer: Callable[[Path, Forecast], None] | None = None
    kind_hint: str | None = None  # the only kind of data the format holds (None: any)
    folders: bool = False  # also reads a folder whose suffix no format claims


#: suffix (lower case, with the dot) -> :class:`Format`; change it through :func:`register_format`.
FORMATS: dict[str, Format] = {}


def register_format(
    suffixes: str | Iterable[str],
    reader: Callable[..., SpatioTemporalData] | None = None,
    writer: Callable[[Path, Forecast], None] | None = None,
    kind_hint: str | None = None,
    *,
    name: str | None = None,
    folders: bool = False,
    replace: bool = False,
) -> Format:
    """Map file suffixes to a reader and/or a writer (see the module's docstring for their signatures).

    ``kind_hint``: ``"grid"`` or ``"sensor"`` when the format only holds that kind of data (the
    reader's default ``kind``; the writer is refused other data).  ``folders``: read folders whose
    suffix is unknown with this format.  A suffix that is already taken is an error unless
    ``replace=True``.
    """
    suffixes = (suffixes,) if isinstance(suffixes, str) else tuple(suffixes)
    suffixes = tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes)
    if not suffixes or (reader is None and writer is None):
        raise ValueError("register_format needs at least one suffix and a reader or a writer")
    if kind_hint not in (None, *KINDS):
        raise ValueError(f"kind_hint should be one of {KINDS} or None, got {kind_hint!r}")
    taken = [s for s in suffixes if s in FORMATS]
    if taken and not replace:
        raise ValueError(
            f"{taken} already read/written as {FORMATS[taken[0]].name}; pass replace=True to override"
        )
    fmt = Format(name or suffixes[0].lstrip(".").upper(), suffixes, reader, writer, kind_hint, folders)
    FORMATS.update(dict.fromkeys(suffixes, fmt))
    return fmt


def file_reader(fn: Callable[..., SpatioTemporalData], **defaults) -> Callable[..., SpatioTemporalData]:
    """A reader from ``fn(path, **options)`` that finds the layout and kind in the file itself."""

    def read(path: Path, layout: str | None = None, kind: str | None = None, **options) -> SpatioTemporalData:
        return fn(path, **{**defaults, **options})

    read.__doc__ = f"Read a file with {fn.__name__}."
    return read


def _describe(role: str) -> str:
    """The formats that have a ``role`` ("reader" or "writer"), by name with their suffixes."""
    seen = {id(f): f for f in FORMATS.values() if getattr(f, role) is not None}
    parts = [f"{f.name} ({' '.join(s for s in f.suffixes if FORMATS.get(s) is f)})" for f in seen.values()]
    folder = next((f for f in reversed(seen.values()) if f.folders), None)
    if role == "reader" and folder is not None:
        parts.append(f"a folder ({folder.name})")
    return ", ".join(parts) or "none"


def format_for(path: str | Path, role: str = "reader") -> Format:
    """The format that reads (``role="reader"``) or writes (``"writer"``) ``path``, by its suffix.

    A folder is read by its suffix's format when that one reads folders, else by the last format
    registered with ``folders=True``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    fmt = FORMATS.get(suffix)
    if role == "reader" and path.is_dir() and not (fmt is not None and fmt.folders):
        fmt = next((f for f in reversed(FORMATS.values()) if f.folders), None)
    if fmt is not None and getattr(fmt, role) is not None:
        return fmt
    what = "file type" if role == "reader" else "forecast format"
    raise ValueError(
        f"{path}: unsupported {what} {suffix!r}; known: {_describe(role)} "
        "(stpatch.data.adapters.register_format adds one)"
    )


def read_array_file(
    path, layout: str | None = None, kind: str | None = None, **options
) -> SpatioTemporalData:
    """Read the input of a prediction: ``.npy``, ``.npz``, NetCDF/Zarr/GRIB, CSV, video (:data:`FORMATS`).

    Raw arrays (``.npy``/``.npz``) use ``layout``; by default the layout of their number of dims
    for data of ``kind`` (:func:`~stpatch.data.adapters.arrays.default_layout`: for ``"grid"`` 5 ->
    BTCHW, 4 -> TCHW, 3 -> THW; for ``"sensor"`` 4 -> BTNC, 3 -> TNC, 2 -> TN; for None 5 -> BTCHW,
    4 -> TCHW, 3 -> THW, 2 -> TN).  An ``.npz`` holds the array under ``x``, ``data``, ``array`` or
    ``forecast`` (or its only array), optionally ``times``, ``mask``, ``lat``, ``lon``.
    Other ``options`` go to the format's reader: :func:`from_numpy`, :func:`from_xarray`,
    :func:`from_csv` or :func:`from_video`.
    """
    path = Path(path)
    if kind not in (None, *KINDS):
        raise ValueError(f"kind should be one of {KINDS} or None, got {kind!r}")
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    fmt = format_for(path, "reader")
    return fmt.reader(path, layout=layout, kind=kind or fmt.kind_hint, **options)


@dataclass(frozen=True)
class Forecast:
    """What a writer writes: the forecast and what is known about it."""

    path: Path  # the target (for messages: the writer itself writes to a temporary path)
    array: np.ndarray  # float32 (T, C, H, W) / (T, N, C), or with a leading batch dim
    kind: str
    batched: bool
    times: np.ndarray | None  # datetime64[ns] (T,) when known
    step: np.timedelta64 | None
    channels: list[str]
    like: SpatioTemporalData | None  # the input the forecast continues

    @property
    def steps(self) -> int:
        return self.array.shape[1 if self.batched else 0]


def _future_times(like: SpatioTemporalData | None, n: int, start_time=None, step=None):
    if step is None and like is not None:
        step = like.attrs.get("step")
        if step is None and like.times is not None and like.times[-1] is not None and len(like.times[-1]) > 1:
            step = np.median(np.diff(like.times[-1]))
    if step is not None and not isinstance(step, np.timedelta64):
        import pandas as pd

        step = pd.Timedelta(step).to_timedelta64()
    if (
        start_time is None
        and like is not None
        and like.times is not None
        and like.times[-1] is not None
        and step is not None
    ):
        start_time = like.times[-1][-1] + step
    if start_time is None or step is None:
        return None, step
    return np.datetime64(start_time, "ns") + np.arange(n) * step.astype("timedelta64[ns]"), step


def write_forecast(path, array, like: SpatioTemporalData | None = None, start_time=None, step=None) -> Path:
    """Write a forecast (atomically) in the format of ``path``'s suffix (:data:`FORMATS`).

    Parameters
    ----------
    path: ``.npy``, ``.npz``, ``.nc`` (NetCDF via xarray) or ``.csv`` (sensor data, wide).
    array: ``(T_out, C, H, W)`` / ``(T_out, N, C)`` or with a leading batch dimension; numpy or torch.
    like: the input data (from :func:`read_array_file`); supplies channel names, coordinates,
        sensor ids, and the times, which are continued by the input's time step.
    start_time, step: override the first forecast time and the step.

    NetCDF: one variable per channel with dims ``(time, <space dims>)`` (a batch adds a leading
    ``sample`` dim and uses ``lead_time`` instead of ``time``).  CSV: a ``time`` column (or
    ``step``) and one column per sensor (``sensor:channel`` when there are several channels).
    """
    path = Path(path)
    arr = np.asarray(to_numpy(array), dtype=np.float32)
    kind = like.kind if like is not None else ("sensor" if arr.ndim == 3 else "grid")
    base = 4 if kind == "grid" else 3
    if arr.ndim not in (base, base + 1):
        raise ValueError(
            f"write_forecast: expected {_SHAPES[kind]} or with a batch dim for {kind} data, got shape {arr.shape}"
        )
    batched = arr.ndim == base + 1
    times, step = _future_times(like, arr.shape[1 if batched else 0], start_time, step)
    fmt = format_for(path, "writer")
    if fmt.kind_hint not in (None, kind):
        others = [s for s, f in FORMATS.items() if f.writer is not None and f.kind_hint in (None, kind)]
        raise ValueError(
            f"{path}: {fmt.name} output is for {fmt.kind_hint} data {_SHAPES[fmt.kind_hint]}; "
            f"write {kind} data as {', '.join(others)}"
        )
    C = arr.shape[-3] if kind == "grid" else arr.shape[-1]
    channels = (
        list(like.channels) if like is not None and len(like.channels) == C else [f"c{i}" for i in range(C)]
    )
    forecast = Forecast(path, arr, kind, batched, times, step, channels, like)
    with atomic_path(path) as tmp:
        fmt.writer(tmp, forecast)
    return path


# ============================================================================ the built-in table
_xarray, _csv = file_reader(xarray_io.from_xarray), file_reader(tables.from_csv)
register_format(".npy", arrays.read_npy, arrays.write_npy, name="NumPy array")
register_format(".npz", arrays.read_npz, arrays.write_npz, name="NumPy archive")
register_format(xarray_io.NETCDF_SUFFIXES, _xarray, xarray_io.write_netcdf, name="NetCDF")
register_format(".zarr", _xarray, name="Zarr", folders=True)
register_format(xarray_io.GRIB_SUFFIXES, _xarray, name="GRIB")
register_format(".csv", _csv, tables.write_csv, kind_hint="sensor", name="CSV")
register_format(".txt", _csv, kind_hint="sensor", name="CSV text")
register_format(".tsv", file_reader(tables.from_csv, sep="\t"), kind_hint="sensor", name="TSV")
register_format(video.VIDEO_SUFFIXES, file_reader(video.from_video), kind_hint="grid", name="video")
