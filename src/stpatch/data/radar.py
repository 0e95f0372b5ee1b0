"""Radar rain-rate sequences (pysteps example data: MeteoSwiss GIF and FMI PGM composites).

Each event folder ``radar/<source>/<YYYYMMDD>/`` becomes one segment ``(T, 1, H, W)`` of
rain rate in mm/h (NaN where the radar has no coverage, which becomes ``mask == False``).
Frames are decoded with pysteps' importers and converted with ``pysteps.utils.to_rainrate``,
then cropped and block-mean downsampled to a working size.  Decoded arrays are cached as
``.npz`` keyed by the options (``STPATCH_CACHE_DIR`` or ``~/.cache/stpatch``).

Transforms (option ``transform``):

* ``None`` (default): mm/h; the registry pairs it with the ``"db"`` scaler (dBR, standardised),
  whose ``inverse_transform`` gives mm/h back for CSI/FSS.
* ``"dbr"``: ``10 log10(R)`` for ``R >= threshold`` (0.1 mm/h) else ``zerovalue``
  (``10 log10(threshold) - 5`` = -15 dBR).
* ``"log"``: ``log(1 + R)``.

:func:`rainrate` inverts either transform.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np

from .core import DatasetInfo, SpatioTemporalData

__all__ = ["RADAR_EVENTS", "load_radar", "block_mean", "rainrate", "radar_transform", "read_fmi_pgm"]

#: Event folders shipped with the pysteps example data, oldest first.
RADAR_EVENTS = {
    "mch": ("20150515", "20160711", "20170131"),
    "fmi": ("20160928", "20170509"),
}
_PATTERN = {"mch": "*.gif", "fmi": "*.pgm.gz"}
_CACHE_VERSION = 1


def cache_root(explicit=None) -> Path:
    """Where decoded arrays are cached: ``explicit``, ``$STPATCH_CACHE_DIR`` or ``~/.cache/stpatch``."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("STPATCH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "stpatch"


# ----------------------------------------------------------------------------- transforms
def radar_transform(
    r: np.ndarray, transform: str | None, threshold: float = 0.1, zerovalue: float | None = None
):
    """Rain rate (mm/h) -> ``"dbr"`` / ``"log"`` / unchanged (``None``); NaN stays NaN."""
    if transform is None or transform == "none":
        return r
    if transform == "dbr":
        zv = 10.0 * np.log10(threshold) - 5.0 if zerovalue is None else zerovalue
        with np.errstate(divide="ignore", invalid="ignore"):
            y = 10.0 * np.log10(np.maximum(r, threshold))
        y = np.where(r >= threshold, y, zv)
        return np.where(np.isnan(r), np.nan, y).astype(r.dtype, copy=False)
    if transform == "log":
        return np.log1p(r)
    raise ValueError(f"unknown radar transform {transform!r}; expected None, 'dbr' or 'log'")


def rainrate(x, transform: str | None, threshold: float = 0.1):
    """Invert :func:`radar_transform`: back to mm/h (numpy or torch)."""
    is_torch = type(x).__module__.startswith("torch")
    if transform is None or transform == "none":
        return x
    if transform == "dbr":
        if is_torch:
            import torch

            r = torch.pow(10.0, x / 10.0)
            return torch.where((r >= threshold * (1 - 1e-6)) | torch.isnan(r), r, torch.zeros_like(r))
        r = np.power(10.0, np.asarray(x) / 10.0)
        return np.where((r >= threshold * (1 - 1e-6)) | np.isnan(r), r, 0.0)
    if transform == "log":
        if is_torch:
            import torch

            return torch.expm1(x)
        return np.expm1(x)
    raise ValueError(f"unknown radar transform {transform!r}; expected None, 'dbr' or 'log'")


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Average ``k x k`` blocks of the last two axes, ignoring NaN (all-NaN blocks stay NaN).

    The trailing rows/columns that do not fill a block are dropped.
    """
    if k == 1:
        return a
    h, w = (a.shape[-2] // k) * k, (a.shape[-1] // k) * k
    b = a[..., :h, :w].reshape(*a.shape[:-2], h // k, k, w // k, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(b, axis=(-3, -1))


def _crop_box(shape, crop, who: str):
    """``(y0, x0, h, w)`` in output pixels from ``crop`` = None | s | (h, w) | (y0, x0, h, w)."""
    H, W = shape
    if crop is None:
        return 0, 0, H, W
    if isinstance(crop, int | np.integer):
        crop = (int(crop), int(crop))
    crop = tuple(int(c) for c in crop)
    if len(crop) == 2:
        h, w = crop
        y0, x0 = (H - h) // 2, (W - w) // 2
    elif len(crop) == 4:
        y0, x0, h, w = crop
    else:
        raise ValueError(f"{who}: crop should be a size, (h, w) or (y0, x0, h, w), got {crop}")
    if h < 1 or w < 1 or y0 < 0 or x0 < 0 or y0 + h > H or x0 + w > W:
        raise ValueError(f"{who}: crop {crop} does not fit the downsampled grid {(H, W)}")
    return y0, x0, h, w


# ----------------------------------------------------------------------------- decoding
def _quiet_pysteps():
    """Import pysteps without its banner on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        import pysteps.io  # noqa: F401
        import pysteps.utils  # noqa: F401
    import pysteps

    return pysteps


def _parse_time(source: str, name: str) -> np.datetime64:
    try:
        if source == "mch":  # AQC + yy + day of year + HHMM, e.g. AQC151351545F_00005.801.gif
            yy, doy, hh, mm = int(name[3:5]), int(name[5:8]), int(name[8:10]), int(name[10:12])
            t = _dt.datetime(2000 + yy, 1, 1) + _dt.timedelta(days=doy - 1, hours=hh, minutes=mm)
        else:  # 201609281445_fmi.radar...
            t = _dt.datetime.strptime(name[:12], "%Y%m%d%H%M")
    except ValueError as e:
        raise ValueError(f"cannot read a timestamp from the radar file name {name!r} ({source})") from e
    return np.datetime64(t, "ns")


def _threshold_value(x: np.ndarray) -> float:
    """Smallest finite value above the minimum (pysteps' convention for ``threshold``)."""
    v = x[np.isfinite(x)]
    if not v.size:
        return float("nan")
    m = v.min()
    above = v[v > m]
    return float(above.min() if above.size else m)


def read_fmi_pgm(path) -> tuple[np.ndarray, dict]:
    """Read an FMI PGM(.gz) composite into dBZ without pyproj (no georeferencing).

    Same decoding as ``pysteps.io.import_fmi_pgm``: the value equal to the PGM maxval is
    missing, dBZ = (value - 64) / 2.
    """
    from PIL import Image

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        img = np.asarray(Image.open(io.BytesIO(raw)))
    except Exception as e:  # noqa: BLE001 - gzip/PIL raise many kinds
        raise ValueError(f"{path}: cannot decode the FMI PGM composite ({type(e).__name__}: {e})") from e
    tokens, pos = [], 0
    while len(tokens) < 4 and pos < len(raw):
        line_end = raw.index(b"\n", pos)
        line = raw[pos:line_end].split(b"#", 1)[0]
        tokens += line.split()
        pos = line_end + 1
    maxval = int(tokens[3])
    dbz = img.astype(np.float64)
    dbz[img == maxval] = np.nan
    dbz = (dbz - 64.0) / 2.0
    meta = {
        "institution": "Finnish Meteorological Institute",
        "accutime": 5.0,
        "unit": "dBZ",
        "transform": "dB",
        "zerovalue": float(np.nanmin(dbz)),
        "threshold": _threshold_value(dbz),
        "zr_a": 223.0,
        "zr_b": 1.53,
        "yorigin": "upper",
    }
    return dbz, meta


def _decode(source: str, path: Path) -> tuple[np.ndarray, dict]:
    """One frame as rain rate (mm/h), ``(H, W)`` float64, and its pysteps metadata."""
    _quiet_pysteps()
    from pysteps.exceptions import MissingOptionalDependency
    from pysteps.io import import_fmi_pgm, import_mch_gif
    from pysteps.utils import to_rainrate

    try:
        if source == "mch":
            r, _, meta = import_mch_gif(str(path), product="AQC", unit="mm", accutime=5.0)
        else:
            try:
                r, _, meta = import_fmi_pgm(str(path), gzipped=path.suffix == ".gz")
            except MissingOptionalDependency:
                r, meta = read_fmi_pgm(path)  # pyproj missing: same values, no georeferencing
        r, meta = to_rainrate(r, meta)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as e:  # noqa: BLE001 - decoders raise many kinds for bad files
        raise ValueError(
            f"{path}: cannot decode the radar {source.upper()} file ({type(e).__name__}: {e})"
        ) from e
    return np.asarray(r, dtype=np.float64), meta


def _event_files(data_dir: Path, source: str, event: str) -> list[Path]:
    from .registry import missing_file_error

    folder = data_dir / "radar" / source / event
    files = sorted(folder.glob(_PATTERN[source])) if folder.is_dir() else []
    if not files:
        raise missing_file_error(
            f"radar_{source}",
            data_dir,
            f"radar/{source}/{event}/",
            what=f"the {_PATTERN[source]} frames of event {event}",
        )
    return files


def _decode_event(source, files, downsample, crop, who):
    frames, meta0, box = [], None, None
    for f in files:
        r, meta = _decode(source, f)
        if meta0 is None:
            meta0 = meta
            full = (r.shape[0] // downsample, r.shape[1] // downsample)
            box = _crop_box(full, crop, who)
        y0, x0, h, w = box
        k = downsample
        frames.append(block_mean(r[y0 * k : (y0 + h) * k, x0 * k : (x0 + w) * k], k).astype(np.float32))
    y0, x0, h, w = box
    k = downsample
    coords = None
    if all(key in meta0 for key in ("x1", "y2", "xpixelsize", "ypixelsize")):
        xs = meta0["x1"] + ((x0 + np.arange(w)) * k + k / 2) * meta0["xpixelsize"]
        if meta0.get("yorigin", "upper") == "upper":
            ys = meta0["y2"] - ((y0 + np.arange(h)) * k + k / 2) * meta0["ypixelsize"]
        else:
            ys = meta0["y1"] + ((y0 + np.arange(h)) * k + k / 2) * meta0["ypixelsize"]
        coords = {"y": ys, "x": xs}
    keep = {
        k_: v
        for k_, v in meta0.items()
        if isinstance(v, str | int | float) and k_ not in ("threshold", "zerovalue")
    }
    return np.stack(frames)[:, None], coords, keep


def load_radar(
    source: str,
    data_dir: Path,
    info: DatasetInfo | None = None,
    events=None,
    downsample: int = 4,
    crop=128,
    transform: str | None = None,
    threshold: float = 0.1,
    zerovalue: float | None = None,
    cache: bool = True,
    cache_dir=None,
    max_frames: int | None = None,
) -> SpatioTemporalData:
    """Radar events as a grid ``SpatioTemporalData``: one segment ``(T, 1, h, w)`` per event.

    Parameters
    ----------
    source: ``"mch"`` or ``"fmi"``.
    events: event folder names (``"YYYYMMDD"``) to read; default all, oldest first.
    downsample: block-mean factor applied to the native 1 km grid (4 -> 4 km).
    crop: size of the working window in downsampled pixels: ``s`` or ``(h, w)`` (centred) or
        ``(y0, x0, h, w)``; None keeps the whole (downsampled) domain.
    transform: None (mm/h), ``"dbr"`` or ``"log"`` (see the module docstring).
    cache: read/write decoded arrays in the cache directory.
    cache_dir: the cache directory (default ``$STPATCH_CACHE_DIR`` or ``~/.cache/stpatch``).
    max_frames: read only the first frames of each event (quick looks, tests).
    """
    data_dir = Path(data_dir)
    who = f"radar_{source}"
    if source not in RADAR_EVENTS:
        raise ValueError(f"radar source should be one of {tuple(RADAR_EVENTS)}, got {source!r}")
    if int(downsample) < 1:
        raise ValueError(f"{who}: downsample should be an integer >= 1, got {downsample}")
    downsample = int(downsample)
    if transform not in (None, "none", "dbr", "log"):
        raise ValueError(f"{who}: transform should be None, 'dbr' or 'log', got {transform!r}")
    events = list(
        RADAR_EVENTS[source] if events is None else ([events] if isinstance(events, str) else events)
    )
    segments, times, all_coords, meta = [], [], None, {}
    for ev in events:
        files = _event_files(data_dir, source, str(ev))
        if max_frames is not None:
            files = files[: int(max_frames)]
        stamps = np.array([_parse_time(source, f.name) for f in files])
        order = np.argsort(stamps, kind="stable")
        files, stamps = [files[i] for i in order], stamps[order]
        key = json.dumps(
            {
                "v": _CACHE_VERSION,
                "source": source,
                "event": str(ev),
                "files": [(f.name, f.stat().st_size) for f in files],
                "downsample": downsample,
                "crop": crop if crop is None or isinstance(crop, int) else list(crop),
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        cpath = cache_root(cache_dir) / f"{who}_{ev}_{digest}.npz"
        arr = coords = None
        if cache and cpath.exists():
            try:
                with np.load(cpath, allow_pickle=False) as z:
                    arr = z["rain"]
                    coords = {"y": z["y"], "x": z["x"]} if "x" in z else None
                    meta = json.loads(str(z["meta"]))
            except Exception:  # noqa: BLE001 - a broken cache file is simply rebuilt
                arr = None
        if arr is None:
            arr, coords, meta = _decode_event(source, files, downsample, crop, who)
            if cache:
                try:
                    cpath.parent.mkdir(parents=True, exist_ok=True)
                    tmp = cpath.with_suffix(f".tmp{os.getpid()}.npz")
                    extra = {} if coords is None else {"y": coords["y"], "x": coords["x"]}
                    np.savez(tmp, rain=arr, meta=json.dumps(meta), **extra)
                    os.replace(tmp, cpath)
                except OSError as e:
                    warnings.warn(f"{who}: could not write the cache {cpath} ({e})", stacklevel=2)
        # regular 5-minute grid: missing frames become all-NaN frames (mask False)
        step = np.timedelta64(5, "m")
        if len(stamps) > 1:
            n = int((stamps[-1] - stamps[0]) // step) + 1
            if n != len(stamps):
                full = np.full((n,) + arr.shape[1:], np.nan, dtype=arr.dtype)
                pos = ((stamps - stamps[0]) // step).astype(int)
                full[pos] = arr
                warnings.warn(
                    f"{who} event {ev}: {n - len(stamps)} missing 5-minute frame(s) filled with NaN",
                    stacklevel=2,
                )
                arr, stamps = full, stamps[0] + step * np.arange(n)
        arr = radar_transform(arr, transform, threshold, zerovalue)
        segments.append(arr)
        times.append(stamps)
        all_coords = all_coords or coords
    attrs = {
        "events": [str(e) for e in events],
        "units": {None: "mm/h", "none": "mm/h", "dbr": "dBR", "log": "log(1 + mm/h)"}[transform],
        "transform": None if transform == "none" else transform,
        "threshold": threshold,
        "zerovalue": float(10.0 * np.log10(threshold) - 5.0 if zerovalue is None else zerovalue),
        "downsample": downsample,
        "crop": crop,
        "pixel_km": float(downsample),
        "projection": meta.get("projection"),
        "institution": meta.get("institution"),
    }
    return SpatioTemporalData(
        kind="grid",
        segments=segments,
        times=times,
        channels=["rain_rate" if transform in (None, "none") else f"rain_{transform}"],
        coords=all_coords,
        info=info,
        name=who,
        attrs=attrs,
    )
