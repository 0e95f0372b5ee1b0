"""Your own radar files -> :class:`SpatioTemporalData` of rain rate (mm/h), through pysteps' importers.

:func:`from_radar` reads every format pysteps can import (``pysteps.io.get_method(name, "importer")``:
``odim_hdf5``, ``knmi_hdf5``, ``bom_rf3``, ``mch_gif``, ``fmi_pgm``, ``mrms_grib``, ``opera_hdf5``,
``saf_crri`` ... and importer plug-ins) and converts with pysteps' own ``to_rainrate``::

    data = from_radar("radar/*.h5", importer="odim_hdf5", downsample=4, crop=128)
    data.segments[0].shape   # (T, 1, H, W) mm/h; NaN (no coverage) -> mask False

The built-in radar data sets (:mod:`stpatch.data.sets.radar`, ``radar_mix``) read their files through
this same function.

Times, per file, first that applies: the ``timestamp`` option; the file's own nominal time for ODIM
HDF5 (``/what`` ``date`` + ``time``; pysteps' importers return no time); the file-name pattern of the
pysteps data source that uses the importer (``pysteps.rcparams.data_sources``, the
``pysteps.io.archive.find_by_date`` convention: strftime codes, ``?`` = any one character); a
``YYYYmmddHHMM[SS]`` run of digits in the name.

Gaps: frames are sorted by time and put on the data's step (``timestep`` or the most common
difference).  A missing frame raises by default (``gaps="raise"``), naming the missing times: a file
that failed to download is more often a mistake than a wish.  ``gaps="nan"`` fills all-NaN frames
instead (mask False; all-missing windows are dropped later), as the built-in data sets do.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob as _glob
import inspect
import io
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core import SpatioTemporalData
from ..radar import block_mean, crop_box

__all__ = ["from_radar", "radar_importers", "read_radar_frame", "radar_file_time"]

GAPS = ("raise", "nan")
#: Name patterns tried when neither the option nor the importer's data source gives one.
_GENERIC_PATTERNS = ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d_%H%M", "%Y%m%d-%H%M%S", "%Y%m%dT%H%M")
_DIRECTIVE = {"Y": r"(\d{4})", "y": r"(\d{2})", "m": r"(\d{2})", "d": r"(\d{2})", "j": r"(\d{3})",
              "H": r"(\d{2})", "M": r"(\d{2})", "S": r"(\d{2})"}
_ODIM = ("odim_hdf5", "opera_hdf5")


def _pysteps():
    """Import pysteps without its banner on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        import pysteps
        import pysteps.io  # noqa: F401
        import pysteps.utils  # noqa: F401
    return pysteps


def radar_importers() -> list[str]:
    """The importer names pysteps knows (built-in and plug-ins), sorted."""
    from pysteps.io import interface

    return sorted(interface._importer_methods)


def _importer(name: str) -> Callable:
    _pysteps()
    from pysteps.io import get_method

    if isinstance(name, str) and name.lower() in radar_importers():
        return get_method(name.lower(), "importer")
    raise ValueError(
        f"unknown radar importer {name!r}; pysteps' importers are: {', '.join(radar_importers())} "
        "(pass importer=NAME, e.g. 'odim_hdf5' for ODIM HDF5 composites)"
    )


def _data_source(name: str) -> dict:
    """pysteps' data-source entry (rcparams) that uses the importer ``name``, or {}."""
    for source in _pysteps().rcparams.data_sources.values():
        if source.get("importer") == name:
            return dict(source)
    return {}


def read_radar_frame(path: str | Path, importer: str, **importer_kwargs) -> tuple[np.ndarray, dict]:
    """One file as rain rate: ``(H, W)`` float64 mm/h (NaN = no coverage) and pysteps' metadata.

    The importer's options default to those of its pysteps data source (``mch_gif``: product AQC,
    unit mm, accutime 5); ``gzipped`` follows the file's ``.gz`` suffix unless given.
    """
    name = str(importer).lower()
    fn = _importer(name)
    from pysteps.exceptions import MissingOptionalDependency
    from pysteps.utils import to_rainrate

    path = Path(path)
    kw = {**_data_source(name).get("importer_kwargs", {}), **importer_kwargs}
    params = inspect.signature(fn).parameters
    if "gzipped" not in importer_kwargs and ("gzipped" in kw or "gzipped" in params):
        kw["gzipped"] = path.suffix == ".gz"
    if not path.is_file():
        raise FileNotFoundError(f"radar file {path} does not exist")
    try:
        rain, _, meta = fn(str(path), **kw)
        rain, meta = to_rainrate(rain, dict(meta))
    except MissingOptionalDependency as e:
        raise ImportError(
            f"the pysteps importer {name!r} needs a package that is missing ({e}); "
            "install the radar extra: pip install 'stpatch[radar]' (pysteps, pyproj, h5py)"
        ) from e
    except Exception as e:  # noqa: BLE001 - importers raise many kinds for a file they cannot read
        raise ValueError(
            f"{path}: cannot decode the radar file with the pysteps importer {name!r} "
            f"({type(e).__name__}: {e}); check that it is a {name} file, or pick the importer of its "
            f"format ({', '.join(radar_importers())})"
        ) from e
    if meta.get("unit") != "mm/h":
        raise ValueError(f"{path}: pysteps converted it to {meta.get('unit')!r}, expected 'mm/h' rain rate")
    return np.asarray(rain, dtype=np.float64), meta


# ----------------------------------------------------------------------------- times
def _pattern(fmt: str, bounded: bool = False) -> tuple[re.Pattern, str]:
    """A strftime pattern (``?`` = any character) -> (regex with one group per code, codes joined by '|')."""
    out, codes, i = [], [], 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            code = fmt[i + 1]
            if code == "%":
                out.append("%")
            elif code in _DIRECTIVE:
                out.append(_DIRECTIVE[code])
                codes.append("%" + code)
            else:
                raise ValueError(f"timestamp pattern {fmt!r}: %{code} is not supported; use %Y %y %m %d %j %H %M %S")
            i += 2
            continue
        out.append("." if c == "?" else re.escape(c))
        i += 1
    body = "".join(out)
    return re.compile(rf"(?<!\d){body}(?!\d)" if bounded else body), "|".join(codes)


def _time_from_name(name: str, fmt: str, bounded: bool = False) -> np.datetime64 | None:
    regex, codes = _pattern(fmt, bounded)
    m = regex.search(name)
    if m is None:
        return None
    try:
        return np.datetime64(_dt.datetime.strptime("|".join(m.groups()), codes), "ns")
    except ValueError:
        return None


def _odim_time(path: Path) -> np.datetime64 | None:
    """The nominal time of an ODIM HDF5 file (``/what`` date and time), or None."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            what = f["what"].attrs
            stamp = "".join(v.decode() if isinstance(v, bytes) else str(v) for v in (what["date"], what["time"]))
        return np.datetime64(_dt.datetime.strptime(stamp[:14], "%Y%m%d%H%M%S"), "ns")
    except Exception:  # noqa: BLE001 - no readable nominal time: fall back to the file name
        return None


def radar_file_time(path: str | Path, importer: str, meta: dict | None = None, timestamp: Any = None) -> np.datetime64:
    """The time of one radar file (see the module docstring for the order of the sources).

    ``timestamp``: None (automatic), a strftime pattern matched anywhere in the file name
    (``"%Y%m%d%H%M"``, ``?`` = any character), a ``(regex, format)`` pair (the regex's first group
    is parsed with the format), or a function ``path -> datetime``.
    """
    path = Path(path)
    tried: list[str] = []
    if callable(timestamp):
        return np.datetime64(timestamp(path), "ns")
    if isinstance(timestamp, tuple | list) and len(timestamp) == 2:
        m = re.search(timestamp[0], path.name)
        if m is not None:
            return np.datetime64(_dt.datetime.strptime(m.group(1) if m.groups() else m.group(0), timestamp[1]), "ns")
        tried.append(f"regex {timestamp[0]!r}")
    elif isinstance(timestamp, str):
        t = _time_from_name(path.name, timestamp)
        if t is not None:
            return t
        tried.append(repr(timestamp))
    elif timestamp is not None:
        raise TypeError(f"timestamp should be None, a strftime pattern, a (regex, format) pair or a function, "
                        f"got {type(timestamp).__name__}")
    else:
        if meta and meta.get("timestamp") is not None:  # importer plug-ins may give one
            return np.datetime64(meta["timestamp"], "ns")
        name = str(importer).lower()
        if name in _ODIM and (t := _odim_time(path)) is not None:
            return t
        source_pattern = _data_source(name).get("fn_pattern")
        for fmt, bounded in ([(source_pattern, False)] if source_pattern else []) + [(p, True) for p in _GENERIC_PATTERNS]:
            t = _time_from_name(path.name, fmt, bounded)
            if t is not None:
                return t
            tried.append(repr(fmt))
    raise ValueError(
        f"{path}: cannot read a time from the file name (tried {', '.join(tried)}); pass "
        "timestamp='%Y%m%d%H%M' (strftime codes, '?' = any character), a (regex, format) pair or a "
        "function path -> datetime"
    )


# ----------------------------------------------------------------------------- files and the time grid
def _resolve_files(files: str | Path | Sequence[str | Path]) -> list[Path]:
    items = [files] if isinstance(files, str | Path) else list(files)
    out: list[Path] = []
    for item in items:
        text = str(Path(item).expanduser())
        if any(ch in text for ch in "*?[") or Path(text).is_dir():
            pattern = str(Path(text) / "*") if Path(text).is_dir() else text
            found = sorted(Path(p) for p in _glob.glob(pattern) if Path(p).is_file())
            if not found:
                raise FileNotFoundError(f"no radar file matches {pattern!r}")
            out += found
        else:
            out.append(Path(text))
    if not out:
        raise ValueError("from_radar: no files given; pass a glob ('radar/*.h5'), a folder or a list of files")
    return out


def _step(times: np.ndarray, timestep) -> np.timedelta64 | None:
    if timestep is not None:
        import pandas as pd

        value = pd.Timedelta(minutes=float(timestep)) if isinstance(timestep, int | float) else pd.Timedelta(timestep)
        return value.to_timedelta64().astype("timedelta64[ns]")
    diffs = np.diff(times)
    if not len(diffs):
        return None
    values, counts = np.unique(diffs, return_counts=True)
    return values[np.argmax(counts)]  # most common; ties -> the smallest


def _step_text(step: np.timedelta64 | None) -> str | None:
    if step is None:
        return None
    seconds = step / np.timedelta64(1, "s")
    return f"{seconds / 60:g}min" if seconds % 60 == 0 else f"{seconds:g}s"


def _iso(t: np.datetime64) -> str:
    return str(t.astype("datetime64[s]"))


def _on_grid(times: np.ndarray, step, files: list[Path], gaps: str, who: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the frames on the regular grid and the grid's times; checks steps and gaps."""
    if step is None or len(times) < 2:
        return np.arange(len(times)), times
    offset = (times - times[0]) % step
    if (offset != np.timedelta64(0, "ns")).any():
        i = int(np.flatnonzero(offset)[0])
        raise ValueError(
            f"{who}: the frames are not on one {_step_text(step)} grid: {files[i].name} ({_iso(times[i])}) falls "
            f"between steps after {files[0].name} ({_iso(times[0])}); mixed products or time steps? read each "
            "product separately, or pass timestep= (the step of the data)"
        )
    pos = ((times - times[0]) // step).astype(np.int64)
    full = times[0] + step * np.arange(int(pos[-1]) + 1)
    missing = np.setdiff1d(np.arange(len(full)), pos)
    if missing.size:
        shown = ", ".join(_iso(full[i]) for i in missing[:10])
        more = f" (and {missing.size - 10} more)" if missing.size > 10 else ""
        if gaps == "raise":
            raise ValueError(
                f"{who}: {missing.size} frame(s) missing on the {_step_text(step)} grid from {_iso(full[0])} to "
                f"{_iso(full[-1])}: {shown}{more}; add the missing files, or pass gaps='nan' to fill them with "
                "all-NaN frames (masked)"
            )
        warnings.warn(f"{who}: {missing.size} missing {_step_text(step)} frame(s) filled with NaN: {shown}{more}",
                      stacklevel=3)
    return pos, full


def _same_grid(meta0: dict, meta: dict) -> bool:
    for key in ("projection", "xpixelsize", "ypixelsize", "x1", "y2"):
        a, b = meta0.get(key), meta.get(key)
        if a is None or b is None:
            continue
        if isinstance(a, str) or isinstance(b, str):
            if str(a).split() != str(b).split():
                return False
        elif not np.isclose(float(a), float(b), rtol=1e-6, atol=1e-3):
            return False
    return True


def _coords(meta: dict, box: tuple[int, int, int, int], k: int) -> dict | None:
    """Projected ``{"y": (h,), "x": (w,)}`` of the block centres, when the metadata georeference the grid."""
    if not all(key in meta for key in ("x1", "y2", "xpixelsize", "ypixelsize")):
        return None
    y0, x0, h, w = box
    xs = meta["x1"] + ((x0 + np.arange(w)) * k + k / 2) * meta["xpixelsize"]
    if meta.get("yorigin", "upper") == "upper":
        ys = meta["y2"] - ((y0 + np.arange(h)) * k + k / 2) * meta["ypixelsize"]
    else:
        ys = meta["y1"] + ((y0 + np.arange(h)) * k + k / 2) * meta["ypixelsize"]
    return {"y": np.asarray(ys, dtype=np.float64), "x": np.asarray(xs, dtype=np.float64)}


def from_radar(
    files: str | Path | Sequence[str | Path],
    importer: str,
    *,
    timestamp: Any = None,
    timestep: Any = None,
    gaps: str = "raise",
    downsample: int = 1,
    crop: Any = None,
    name: str = "radar",
    **importer_kwargs: Any,
) -> SpatioTemporalData:
    """Radar composites in any format pysteps imports -> one grid segment ``(T, 1, h, w)`` of mm/h.

    Parameters
    ----------
    files: a glob (``"radar/*.h5"``), a folder, a file or a list of them.
    importer: a pysteps importer name (:func:`radar_importers`): ``"odim_hdf5"``, ``"mch_gif"``,
        ``"fmi_pgm"``, ``"knmi_hdf5"``, ``"bom_rf3"``, ``"mrms_grib"``, ``"opera_hdf5"``, ``"saf_crri"`` ...
    timestamp: how to read each file's time (see :func:`radar_file_time`); default automatic.
    timestep: the data's step (minutes, or ``"5min"``); default the most common difference.
    gaps: ``"raise"`` (default: a missing frame is an error naming the missing times) or ``"nan"``
        (missing frames become all-NaN frames, mask False).
    downsample: block-mean factor ``k`` (NaN ignored; all-NaN blocks stay NaN); 4 turns 1 km into 4 km.
    crop: in downsampled pixels: ``s`` or ``(h, w)`` (centred) or ``(y0, x0, h, w)``; None keeps all.
    name: the data's name in messages.
    importer_kwargs: passed to the importer (default: its pysteps data source's options).

    Returns
    -------
    ``SpatioTemporalData`` (kind ``"grid"``, one segment ``(T, 1, h, w)`` float32 mm/h, ``mask``
    False where NaN, ``times`` on the regular grid, projected ``coords`` ``{"y", "x"}`` when known);
    ``attrs`` carry ``field="precip"`` and ``suite="radar"`` (so a run on it is scored with CSI/FSS),
    ``default_scaler="db"``, ``step``, ``importer``, ``files``, ``projection``.
    """
    who = f"from_radar({name!r}, importer={importer!r})"
    _importer(importer)  # an unknown name fails before any file is touched
    if gaps not in GAPS:
        raise ValueError(f"{who}: gaps should be 'raise' or 'nan', got {gaps!r}")
    if int(downsample) < 1:
        raise ValueError(f"{who}: downsample should be an integer >= 1, got {downsample}")
    k = int(downsample)
    paths = _resolve_files(files)
    frames, stamps, meta0, box, shape0 = [], [], None, None, None
    for path in paths:
        rain, meta = read_radar_frame(path, importer, **importer_kwargs)
        if meta0 is None:
            meta0, shape0 = meta, rain.shape
            box = crop_box((rain.shape[0] // k, rain.shape[1] // k), crop, who)
        elif rain.shape != shape0 or not _same_grid(meta0, meta):
            raise ValueError(
                f"{who}: mixed grids: {path.name} is {rain.shape} ({meta.get('projection')}, "
                f"{meta.get('xpixelsize')} m pixels) but {paths[0].name} is {shape0} ({meta0.get('projection')}, "
                f"{meta0.get('xpixelsize')} m pixels); read each grid with its own from_radar call"
            )
        y0, x0, h, w = box
        frames.append(block_mean(rain[y0 * k : (y0 + h) * k, x0 * k : (x0 + w) * k], k).astype(np.float32))
        stamps.append(radar_file_time(path, importer, meta, timestamp))
    times = np.array(stamps, dtype="datetime64[ns]")
    order = np.argsort(times, kind="stable")
    times, frames, paths = times[order], [frames[i] for i in order], [paths[i] for i in order]
    dup = np.flatnonzero(np.diff(times) == np.timedelta64(0, "ns"))
    if dup.size:
        i = int(dup[0])
        raise ValueError(f"{who}: {paths[i].name} and {paths[i + 1].name} are both at {_iso(times[i])}; pass each time once")
    step = _step(times, timestep)
    pos, full = _on_grid(times, step, paths, gaps, who)
    rain = np.full((len(full), 1, *frames[0].shape), np.nan, dtype=np.float32)
    rain[pos, 0] = np.stack(frames)
    km = float(meta0.get("xpixelsize", 1000.0)) * k / 1000.0 if meta0.get("cartesian_unit", "m") == "m" else None
    attrs = {
        "units": "mm/h", "field": "precip", "suite": "radar", "default_scaler": "db", "transform": None,
        "importer": str(importer).lower(), "files": [str(p) for p in paths], "step": _step_text(step),
        "missing_times": [_iso(t) for t in np.setdiff1d(full, times)], "downsample": k, "crop": crop,
        "pixel_km": km, "projection": meta0.get("projection"), "institution": meta0.get("institution"),
        "var_attrs": {"rain_rate": {"units": "mm/h", "long_name": "rain rate"}},
    }
    return SpatioTemporalData(kind="grid", segments=[rain], times=[full], mask=[np.isfinite(rain)],
                              channels=["rain_rate"], coords=_coords(meta0, box, k), name=name, attrs=attrs)
