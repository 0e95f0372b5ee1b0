"""The radar family: ``radar_mch`` (MeteoSwiss GIF) and ``radar_fmi`` (FMI PGM), pysteps example data.

Each event folder ``radar/<source>/<YYYYMMDD>/`` becomes one segment ``(T, 1, H, W)`` of rain rate in
mm/h (NaN where the radar has no coverage, which becomes ``mask == False``).  Files are read by the one
radar path, :func:`~stpatch.data.adapters.radar_files.from_radar` (pysteps' importer of the source,
``to_rainrate``, crop and block means, the 5-minute grid with missing frames as NaN); decoded events
are cached as ``.npz`` keyed by the files and the options (``STPATCH_CACHE_DIR`` or ``~/.cache/stpatch``).
The helpers here (:func:`event_files`, :func:`decoded_event`, :func:`load_events`) also serve ``radar_mix``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from ...atomic import atomic_path
from ..adapters.radar_files import from_radar
from ..core import DatasetInfo, SpatioTemporalData
from ..radar import cache_root, radar_transform
from ..registry import missing_file_error

__all__ = ["RADAR_MCH", "RADAR_FMI", "DATASETS", "RADAR_EVENTS", "IMPORTERS", "load_radar", "load_events"]

#: Event folders shipped with the pysteps example data, oldest first.
RADAR_EVENTS = {
    "mch": ("20150515", "20160711", "20170131"),
    "fmi": ("20160928", "20170509"),
    "rmi": ("20210704",),
}
#: The pysteps importer of each source and its options.
IMPORTERS = {
    "mch": ("mch_gif", {"product": "AQC", "unit": "mm", "accutime": 5.0}),
    "fmi": ("fmi_pgm", {}),
    "rmi": ("odim_hdf5", {}),
}
_PATTERN = {"mch": "*.gif", "fmi": "*.pgm.gz", "rmi": "*.hdf"}
_ALT_FOLDERS = {"rmi": ("radar/rmi/radqpe",)}
_CACHE_VERSION = 2
_PYSTEPS_DATA_ZIP = "https://github.com/pySTEPS/pysteps-data/archive/refs/heads/master.zip"


def _radar_info(src: str) -> DatasetInfo:
    mch = src == "mch"
    events = "2015-05-15, 2016-07-11 and 2017-01-31" if mch else "2016-09-28 and 2017-05-09"
    return DatasetInfo(
        name=f"radar_{src}",
        kind="grid",
        field="precip",
        description=(
            "MeteoSwiss radar rain-rate composites (AQC GIF), 3 events of 40 frames"
            if mch
            else "Finnish Meteorological Institute radar reflectivity composites (PGM, dBZ -> mm/h), 2 events of 40 frames"
        ),
        source=f"pysteps example data, https://github.com/pySTEPS/pysteps-data (radar/{src}); "
        + ("MeteoSwiss" if mch else "Finnish Meteorological Institute"),
        license="pysteps-data terms (research and educational use)",
        files=tuple(f"radar/{src}/{e}/" for e in RADAR_EVENTS[src]),
        sample_shape="(1, 128, 128) rain rate in mm/h (4 km blocks, centre crop); native "
        + ("640x710" if mch else "1226x760")
        + " at 1 km",
        t_in=4,
        t_out=12,
        step="5min",
        split=(
            f"event-wise: events {events}, oldest first; the last event is the test set; "
            + (
                "the second-to-last validates; the first trains"
                if mch
                else "the first event's first 80 % trains and its last 20 % (at least one window) validates"
            )
        ),
        default_split="event",
        default_scaler="db",
        units="mm/h",
        urls={f"radar/{src}/": (_PYSTEPS_DATA_ZIP, None)},
        notes=(
            "options: events, downsample (4), crop (128 | (h, w) | (y0, x0, h, w)), transform (None | 'dbr' | "
            "'log'), threshold (0.1 mm/h), cache, cache_dir, max_frames. NaN (no radar coverage) becomes "
            "mask False. The default 'db' scaler works in standardised dBR and its inverse gives mm/h. "
            "Score CSI at 1 and 5 mm/h for lead times up to 60 min against persistence and pysteps "
            "Lucas-Kanade + semi-Lagrangian extrapolation."
            + ("" if mch else " Reading FMI PGM needs pyproj (pip install 'stpatch[radar]').")
        ),
    )


def _event_folder(data_dir: Path, source: str, event: str) -> Path:
    """``radar/<source>/<event>/`` (pysteps-data keeps RMI under ``radar/rmi/radqpe/<event>/``: read there too)."""
    folder = data_dir / "radar" / source / event
    for alt in _ALT_FOLDERS.get(source, ()):
        if not folder.is_dir() and (data_dir / alt / event).is_dir():
            folder = data_dir / alt / event
    return folder


def event_files(data_dir: Path, source: str, event: str, who: str | None = None) -> list[Path]:
    """The frames of one event, sorted by name; a clear FileNotFoundError when there are none."""
    folder = _event_folder(data_dir, source, event)
    files = sorted(folder.glob(_PATTERN[source])) if folder.is_dir() else []
    if not files:
        raise missing_file_error(
            who or f"radar_{source}",
            data_dir,
            f"radar/{source}/{event}/",
            what=f"the {_PATTERN[source]} frames of event {event}",
        )
    return files


def decoded_event(source: str, event: str, files: list[Path], downsample: int, crop, cache: bool, cache_dir, who: str):
    """One event through :func:`~stpatch.data.adapters.radar_files.from_radar` and the ``.npz`` cache.

    Returns ``(rain (T, 1, h, w) float32 mm/h on the 5-minute grid, times (T,), coords or None, attrs)``;
    missing frames are all-NaN (with a warning), keyed by the files and the options in the cache.
    """
    key = json.dumps(
        {
            "v": _CACHE_VERSION,
            "source": source,
            "event": event,
            "files": [(f.name, f.stat().st_size) for f in files],
            "downsample": downsample,
            "crop": crop if crop is None or isinstance(crop, int) else list(crop),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cpath = cache_root(cache_dir) / f"radar_{source}_{event}_{digest}.npz"
    if cache and cpath.exists():
        try:
            with np.load(cpath, allow_pickle=False) as z:
                coords = {"y": z["y"], "x": z["x"]} if "x" in z else None
                return z["rain"], z["times"].astype("datetime64[ns]"), coords, json.loads(str(z["meta"]))
        except Exception:  # noqa: BLE001 - a broken cache file is simply rebuilt
            pass
    importer, options = IMPORTERS[source]
    data = from_radar(files, importer, timestep=5, gaps="nan", downsample=downsample, crop=crop,
                      name=f"{who} event {event}", **options)
    arr, times, coords = data.segments[0], data.times[0], data.coords
    meta = {k: v for k, v in data.attrs.items() if k in ("projection", "institution", "pixel_km", "importer")}
    if cache:
        try:
            extra = {} if coords is None else {"y": coords["y"], "x": coords["x"]}
            with atomic_path(cpath) as tmp:
                np.savez(tmp, rain=arr, times=times.astype(np.int64), meta=json.dumps(meta), **extra)
        except OSError as e:
            warnings.warn(f"{who}: could not write the cache {cpath} ({e})", stacklevel=3)
    return arr, times, coords, meta


def check_options(who: str, downsample, transform) -> int:
    """Validate the shared loader options; returns ``downsample`` as an int."""
    if int(downsample) < 1:
        raise ValueError(f"{who}: downsample should be an integer >= 1, got {downsample}")
    if transform not in (None, "none", "dbr", "log"):
        raise ValueError(f"{who}: transform should be None, 'dbr' or 'log', got {transform!r}")
    return int(downsample)


def load_events(
    events: list[tuple[str, str]],
    data_dir: Path,
    who: str,
    info: DatasetInfo | None,
    downsample: int = 4,
    crop=128,
    transform: str | None = None,
    threshold: float = 0.1,
    zerovalue: float | None = None,
    cache: bool = True,
    cache_dir=None,
    max_frames: int | None = None,
) -> SpatioTemporalData:
    """``(source, event)`` pairs as one grid ``SpatioTemporalData``, one segment ``(T, 1, h, w)`` each, in order."""
    segments, times, all_coords, meta = [], [], None, {}
    for source, ev in events:
        files = event_files(data_dir, source, str(ev), who)
        if max_frames is not None:
            files = files[: int(max_frames)]
        arr, stamps, coords, meta = decoded_event(source, str(ev), files, downsample, crop, cache, cache_dir, who)
        segments.append(radar_transform(arr, transform, threshold, zerovalue))
        times.append(stamps)
        all_coords = all_coords or coords
    attrs = {
        "units": {None: "mm/h", "none": "mm/h", "dbr": "dBR", "log": "log(1 + mm/h)"}[transform],
        "field": "precip",
        "suite": "radar",
        "transform": None if transform == "none" else transform,
        "threshold": threshold,
        "zerovalue": float(10.0 * np.log10(threshold) - 5.0 if zerovalue is None else zerovalue),
        "downsample": downsample,
        "crop": crop,
        "pixel_km": float(downsample),
        "step": "5min",
        "projection": meta.get("projection"),
        "institution": meta.get("institution"),
    }
    return SpatioTemporalData(
        kind="grid",
        segments=segments,
        times=times,
        mask=[np.isfinite(s) for s in segments],
        channels=["rain_rate" if transform in (None, "none") else f"rain_{transform}"],
        coords=all_coords,
        info=info,
        name=who,
        attrs=attrs,
    )


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
    if source not in ("mch", "fmi"):
        raise ValueError(f"radar source should be one of ('mch', 'fmi'), got {source!r}")
    downsample = check_options(who, downsample, transform)
    events = list(
        RADAR_EVENTS[source] if events is None else ([events] if isinstance(events, str) else events)
    )
    data = load_events(
        [(source, str(ev)) for ev in events], data_dir, who, info, downsample, crop, transform, threshold,
        zerovalue, cache, cache_dir, max_frames,
    )
    data.attrs["events"] = [str(e) for e in events]
    return data


RADAR_MCH = _radar_info("mch")
RADAR_FMI = _radar_info("fmi")
# partial keeps load_radar's keyword options visible to the registry's option check
DATASETS = (
    (RADAR_MCH, functools.partial(load_radar, "mch")),
    (RADAR_FMI, functools.partial(load_radar, "fmi")),
)
