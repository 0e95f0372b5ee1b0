"""The in-memory contract every data source is converted to.

A :class:`SpatioTemporalData` holds one or more independent series ("segments") of either

* a **grid** (images, radar, weather fields): each segment is an array ``(T_i, C, H, W)``;
* a **sensor** network (traffic loops, counties, stations): each segment is ``(T_i, N, C)``.

Segments are independent: a forecasting window never spans two of them (radar events, the
sequences of a video batch, or simply one long series).  Arrays may be numpy arrays (views
are kept; nothing is copied) or lazy dask arrays (from :func:`stpatch.data.from_xarray`), in
which case only the window being asked for is ever computed.

Missing values are described three ways, all of which end up in the batch's ``x_mask`` /
``y_mask`` (True = observed):

* NaN in the values;
* an explicit boolean ``mask`` per segment (same shape as the segment);
* a declared ``null_value`` (for example 0 for traffic speeds), compared lazily per window.

Infinite values are not missing values: the data guard (:mod:`stpatch.data.guard`) refuses them, as it
refuses non-numeric values, empty axes and times that do not strictly increase (checked here, in
:meth:`SpatioTemporalData.validate`, so every adapter gets them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = [
    "DatasetInfo",
    "SpatioTemporalData",
    "is_lazy",
    "to_numpy",
    "time_features",
    "FIELD_METRICS",
    "FIELD_BASELINES",
]

#: The metrics each field scores with: names :mod:`stpatch.metrics` computes (its ``METRIC_SUITES``
#: and the thresholded forms ``"csi@1.0"``, ``"fss@1.0/8px"``).
FIELD_METRICS: dict[str, tuple[str, ...]] = {
    "video": ("mse_per_frame", "mae_per_frame", "ssim", "psnr"),
    "sensor": ("masked_mae", "masked_rmse", "masked_mape"),
    "weather": ("lat_weighted_rmse", "lat_weighted_acc"),
    "precip": ("csi@1.0", "csi@5.0", "fss@1.0/8px", "mae_per_pixel"),
}

#: The baselines each field compares against: model registry names (``stpatch.list_models()``).
FIELD_BASELINES: dict[str, tuple[str, ...]] = {
    "video": ("persistence", "convlstm"),
    "sensor": ("climatology", "persistence"),
    "weather": ("persistence", "climatology"),
    "precip": ("persistence", "extrapolation"),
}


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: what a named data set is and how its field evaluates it.

    Attributes
    ----------
    name: registry name (``stpatch.datasets.load(name)``).
    kind: ``"grid"`` (``(T, C, H, W)``) or ``"sensor"`` (``(T, N, C)``).
    field: ``"video"``, ``"sensor"``, ``"weather"`` or ``"precip"``; picks metrics and baselines.
    description: one line.
    source: public source (URL) and citation.
    license: terms of use as commonly cited.
    files: paths relative to the data directory the loader reads (folders end with ``/``).
    sample_shape: the shape of one time step, e.g. ``"(1, 64, 64)"`` or ``"(207, 1)"``.
    t_in, t_out: default numbers of input and target steps.
    step: time between steps (``"5min"``, ``"1h"``, ``"1W"``, or ``"frame"``).
    split: the default split, stated in words (always chronological).
    default_split: the default split as :func:`stpatch.data.windows.split_ranges` accepts it.
    default_scaler: the scaler ``make_datamodule(scaler="auto")`` uses.
    units: physical units of the values.
    metrics, baselines: what the field scores with (metric names of :mod:`stpatch.metrics`) and
        compares against (model registry names); default :data:`FIELD_METRICS` /
        :data:`FIELD_BASELINES` of the field.
    urls: ``{relative path: (url, sha256 or None)}`` used by :func:`stpatch.data.download`.
    notes: anything a user should know (missing values, transforms, caveats).
    """

    name: str
    kind: str
    field: str
    description: str
    source: str
    license: str = ""
    files: tuple[str, ...] = ()
    sample_shape: str = ""
    t_in: int = 10
    t_out: int = 10
    step: str = ""
    split: str = "chronological 0.7 / 0.1 / 0.2 along time"
    default_split: Any = (0.7, 0.1, 0.2)
    default_scaler: str = "standard"
    units: str = ""
    metrics: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ()
    urls: dict = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self):
        if self.kind not in ("grid", "sensor"):
            raise ValueError(f"DatasetInfo {self.name!r}: kind must be 'grid' or 'sensor', got {self.kind!r}")
        if not self.metrics and self.field in FIELD_METRICS:
            object.__setattr__(self, "metrics", FIELD_METRICS[self.field])
        if not self.baselines and self.field in FIELD_BASELINES:
            object.__setattr__(self, "baselines", FIELD_BASELINES[self.field])

    def to_dict(self) -> dict:
        """A plain, JSON-friendly dict (for checkpoints, reports and ``stpatch datasets info``)."""
        out = {}
        for k in self.__dataclass_fields__:
            v = getattr(self, k)
            if isinstance(v, tuple):
                v = list(v)
            if k == "urls":
                v = {
                    p: {"url": list(spec[0]) if isinstance(spec[0], tuple) else spec[0], "sha256": spec[1]}
                    for p, spec in v.items()
                }
            out[k] = v
        return out


def is_lazy(array) -> bool:
    """True for dask (or dask-backed xarray) arrays, whose windows are computed on demand."""
    mod = type(array).__module__
    return mod.startswith("dask") or mod.startswith("xarray")


def to_numpy(array) -> np.ndarray:
    """Materialise ``array`` (numpy, dask, xarray, torch) as numpy; numpy input is returned as is."""
    if isinstance(array, np.ndarray):
        return array
    mod = type(array).__module__
    if mod.startswith("dask"):
        return np.asarray(array.compute(scheduler="synchronous"))
    if mod.startswith("xarray"):
        data = array.data
        if type(data).__module__.startswith("dask"):
            return np.asarray(data.compute(scheduler="synchronous"))
        return np.asarray(data)
    if mod.startswith("torch"):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def time_features(times) -> tuple[np.ndarray, np.ndarray]:
    """Time of day in [0, 1) and day of week (Monday = 0) of datetime64 ``times``.

    >>> tod, dow = time_features(np.array(["2012-03-01T06:00"], dtype="datetime64[ns]"))
    >>> float(tod[0]), int(dow[0])
    (0.25, 3)
    """
    t = np.asarray(times).astype("datetime64[ns]")
    day = t.astype("datetime64[D]")
    tod = (t - day).astype("timedelta64[ns]").astype(np.int64) / 86_400e9
    # 1970-01-01 was a Thursday (3 when Monday = 0)
    dow = (day.astype(np.int64) + 3) % 7
    return tod.astype(np.float32), dow.astype(np.int64)


_LAYOUT_NDIM = {"grid": 4, "sensor": 3}


def _is_sequence(x) -> bool:
    return x is None or (hasattr(x, "__len__") and not isinstance(x, str | bytes))


@dataclass
class SpatioTemporalData:
    """Spatio-temporal data in canonical layout, with everything a forecaster needs beside it.

    Attributes
    ----------
    kind: ``"grid"`` or ``"sensor"``.
    segments: list of arrays, ``(T_i, C, H, W)`` for grids, ``(T_i, N, C)`` for sensors; numpy
        or lazy (dask).  Independent series: windows never cross from one into the next.
    times: list (one per segment) of datetime64 arrays ``(T_i,)``, or ``None`` when unknown.
    mask: list (one per segment) of bool arrays shaped like the segment (True = observed) or
        ``None`` entries; ``None`` when there is no explicit mask.
    channels: channel names, length ``C``.
    coords: grids: ``{"lat": (H,), "lon": (W,)}`` when known (other keys such as projected
        ``"y"``/``"x"`` may appear); sensors: array ``(N, 2)`` of latitude, longitude; or None.
    adjacency: ``(N, N)`` weighted adjacency of a sensor network, or None.
    info: the :class:`DatasetInfo` registry entry, or None for user data.
    null_value: a value that means "missing" (e.g. 0 for traffic speeds), or None.
    name: a short name used in messages.
    attrs: anything else (sensor ids, units, projection, transform applied, source files ...).
    """

    kind: str
    segments: list
    times: list | None = None
    mask: list | None = None
    channels: list[str] | None = None
    coords: Any = None
    adjacency: np.ndarray | None = None
    info: DatasetInfo | None = None
    null_value: float | None = None
    name: str = "data"
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check shapes and consistency; raise ValueError naming what was expected and found."""
        who = f"{self.name!r}"
        if self.kind not in _LAYOUT_NDIM:
            raise ValueError(f"{who}: kind must be 'grid' or 'sensor', got {self.kind!r}")
        if isinstance(self.segments, np.ndarray) or not isinstance(self.segments, Sequence):
            self.segments = [self.segments]
        self.segments = list(self.segments)
        if not self.segments:
            raise ValueError(f"{who}: expected at least one segment, found none")
        ndim = _LAYOUT_NDIM[self.kind]
        layout = "(T, C, H, W)" if self.kind == "grid" else "(T, N, C)"
        rest = None
        for i, seg in enumerate(self.segments):
            shape = tuple(seg.shape)
            if len(shape) != ndim:
                raise ValueError(
                    f"{who}: segment {i} should be {layout} ({ndim} dims) for kind={self.kind!r}, "
                    f"found shape {shape}"
                )
            if rest is None:
                rest = shape[1:]
            elif shape[1:] != rest:
                raise ValueError(
                    f"{who}: all segments must share the same per-step shape; segment 0 has {rest}, "
                    f"segment {i} has {shape[1:]}"
                )
        # the data guard's structure checks (imported here: the guard imports this module)
        from .guard import check_arrays, check_times

        check_arrays(self.segments, self.kind, who)
        nch = self.num_channels
        if self.channels is None:
            self.channels = [f"c{i}" for i in range(nch)] if nch > 1 else ["value"]
        self.channels = [str(c) for c in self.channels]
        if len(self.channels) != nch:
            raise ValueError(f"{who}: {nch} channels in the data but {len(self.channels)} channel names")
        if self.times is not None:
            t = self.times
            if not isinstance(t, list | tuple) or (len(t) and not _is_sequence(t[0])):
                t = [t]
            self.times = t
            self.times = [None if t is None else np.asarray(t).astype("datetime64[ns]") for t in self.times]
            if len(self.times) != len(self.segments):
                raise ValueError(f"{who}: {len(self.segments)} segments but {len(self.times)} time arrays")
            for i, (t, seg) in enumerate(zip(self.times, self.segments, strict=True)):
                if t is not None and t.shape != (seg.shape[0],):
                    raise ValueError(
                        f"{who}: segment {i} has {seg.shape[0]} steps but its times have shape {t.shape}"
                    )
            check_times(self.times, who)
            if all(t is None for t in self.times):
                self.times = None
        if self.mask is not None:
            if not isinstance(self.mask, list | tuple):
                self.mask = [self.mask]
            self.mask = list(self.mask)
            if len(self.mask) != len(self.segments):
                raise ValueError(f"{who}: {len(self.segments)} segments but {len(self.mask)} masks")
            for i, (m, seg) in enumerate(zip(self.mask, self.segments, strict=True)):
                if m is not None and tuple(m.shape) != tuple(seg.shape):
                    raise ValueError(
                        f"{who}: mask {i} should have the segment's shape {tuple(seg.shape)}, found {tuple(m.shape)}"
                    )
            if all(m is None for m in self.mask):
                self.mask = None
        if self.kind == "sensor":
            n = self.spatial_shape[0]
            if self.adjacency is not None:
                adj = np.asarray(self.adjacency)
                if adj.shape != (n, n):
                    src = self.attrs.get("adjacency_file", "adjacency")
                    raise ValueError(f"{who}: {src} should be ({n}, {n}) for {n} sensors, found {adj.shape}")
                self.adjacency = adj
            if self.coords is not None:
                c = np.asarray(self.coords, dtype=float)
                if c.shape != (n, 2):
                    src = self.attrs.get("coords_file", "coords")
                    raise ValueError(
                        f"{who}: {src} should be ({n}, 2) latitude/longitude for {n} sensors, found {c.shape}"
                    )
                self.coords = c
        else:
            if self.adjacency is not None:
                raise ValueError(f"{who}: adjacency is only meaningful for sensor data (kind='sensor')")
            if self.coords is not None:
                if not isinstance(self.coords, dict):
                    raise ValueError(f"{who}: grid coords should be a dict like {{'lat': (H,), 'lon': (W,)}}")
                h, w = self.spatial_shape
                for key, size in (("lat", h), ("y", h), ("lon", w), ("x", w)):
                    if key in self.coords and self.coords[key] is not None:
                        arr = np.asarray(self.coords[key])
                        if arr.shape != (size,):
                            raise ValueError(
                                f"{who}: coords[{key!r}] should have shape ({size},), found {arr.shape}"
                            )
                        self.coords[key] = arr

    # ------------------------------------------------------------------ properties
    @property
    def num_segments(self) -> int:
        return len(self.segments)

    @property
    def lengths(self) -> list[int]:
        """Number of time steps of each segment."""
        return [int(s.shape[0]) for s in self.segments]

    @property
    def num_channels(self) -> int:
        shape = self.segments[0].shape
        return int(shape[1] if self.kind == "grid" else shape[2])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """``(H, W)`` for grids, ``(N,)`` for sensors."""
        shape = self.segments[0].shape
        return (int(shape[2]), int(shape[3])) if self.kind == "grid" else (int(shape[1]),)

    @property
    def num_nodes(self) -> int | None:
        return self.spatial_shape[0] if self.kind == "sensor" else None

    @property
    def lat(self) -> np.ndarray | None:
        """Latitudes ``(H,)`` of a grid (for lat-weighted metrics), or None when unknown."""
        if self.kind == "grid" and isinstance(self.coords, dict):
            return self.coords.get("lat")
        return None

    @property
    def lon(self) -> np.ndarray | None:
        if self.kind == "grid" and isinstance(self.coords, dict):
            return self.coords.get("lon")
        return None

    @property
    def lazy(self) -> bool:
        return any(is_lazy(s) for s in self.segments)

    @property
    def channel_axis(self) -> int:
        """The channel axis counted from the end: -3 for grids ``(.., C, H, W)``, -1 for sensors."""
        return -3 if self.kind == "grid" else -1

    def segment_times(self, i: int) -> np.ndarray | None:
        return None if self.times is None else self.times[i]

    def segment_mask(self, i: int):
        return None if self.mask is None else self.mask[i]

    def replace(self, **changes) -> SpatioTemporalData:
        """A copy with some fields changed (arrays are shared, not copied)."""
        return replace(self, **changes)

    def compute(self) -> SpatioTemporalData:
        """Materialise lazy segments into numpy (only do this when the data fit in memory)."""
        segs = [to_numpy(s) for s in self.segments]
        masks = None if self.mask is None else [None if m is None else to_numpy(m) for m in self.mask]
        return self.replace(segments=segs, mask=masks)

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(s.shape)) for s in self.segments[:4])
        if len(self.segments) > 4:
            shapes += f", ... ({len(self.segments)} segments)"
        t = "no times"
        if self.times is not None and self.times[0] is not None and len(self.times[0]):
            t = f"{self.times[0][0]} .. {self.times[-1][-1] if self.times[-1] is not None else '?'}"
        return (
            f"SpatioTemporalData(name={self.name!r}, kind={self.kind!r}, segments=[{shapes}], "
            f"channels={self.channels}, {t}{', lazy' if self.lazy else ''})"
        )
