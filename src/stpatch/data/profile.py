"""The data profile of a run: what the training split looked like, per channel, kept with the run.

A profile is a plain, JSON-friendly dict, stored in the checkpoint (``checkpoint["stpatch"]["profile"]``)
and as ``RUN_DIR/profile.json``, shown by ``stpatch info RUN``, and read by the data guard
(:mod:`stpatch.data.guard`) to judge new input::

    {"kind": "grid", "field": "precip", "dtype": "float32", "step_seconds": 300.0,
     "no_coverage_nan": True,                    # NaN means "outside the radar's coverage"
     "sensor_ids": None, "grid": {"shape": [H, W], "lat": [first, last], "lon": [first, last]},
     "channels": [{"name": "rain_rate", "units": "mm/h", "valid_range": [0.0, None],
                   "range_source": "units mm/h", "count": 163840, "missing": 0.12,
                   "min": 0.0, "max": 41.3, "quantiles": {"0.01": 0.0, "0.5": 0.0, "0.99": 9.6}}]}

``valid_range`` is what the values can physically be (``None``: unbounded on that side), first that
applies: the data's own declaration (``attrs["valid_range"]``, a pair or ``{channel: pair}``, or the
CF attributes ``valid_range``/``valid_min``/``valid_max`` of a NetCDF variable); the units
(:data:`UNIT_RANGES`: rain rate >= 0, speeds >= 0, kelvin within 150..350); the field
(:data:`FIELD_RANGES`: video in [0, 1]); else unbounded.

:func:`scan_values` is the one streaming pass over values that both the profile and the guard use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .core import SpatioTemporalData, to_numpy
from .streaming import time_blocks

__all__ = [
    "UNIT_RANGES",
    "FIELD_RANGES",
    "QUANTILES",
    "Violation",
    "ChannelScan",
    "channel_units",
    "valid_ranges",
    "scan_values",
    "training_view",
    "make_profile",
    "format_profile",
    "duration",
]

#: Physically valid ranges by units (lower case): ``(lower, upper)``, None = unbounded.
UNIT_RANGES: dict[str, tuple[float | None, float | None]] = {
    "mm/h": (0.0, None), "mm h-1": (0.0, None), "mm/hr": (0.0, None), "mm": (0.0, None),
    "mph": (0.0, None), "km/h": (0.0, None), "kph": (0.0, None),
    "k": (150.0, 350.0), "kelvin": (150.0, 350.0),
    "intensity in [0, 1]": (0.0, 1.0),
}
#: Ranges by field, used when the units say nothing.
FIELD_RANGES: dict[str, tuple[float | None, float | None]] = {"video": (0.0, 1.0)}
#: Quantiles kept in a profile.
QUANTILES = (0.01, 0.5, 0.99)
#: Largest magnitude a float32 holds: the model computes in float32, beyond it a value becomes inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)

_SAMPLE = 200_000  # values per channel kept for quantiles


# ============================================================================ valid ranges
def _per_channel(value: Any, channels: list[str]) -> list[Any]:
    """``value`` for every channel: a dict is looked up by channel name, anything else is shared."""
    if isinstance(value, dict):
        return [value.get(c) for c in channels]
    return [value] * len(channels)


def channel_units(data) -> list[str | None]:
    """Units of each channel: ``attrs["units"]`` (a string or ``{channel: units}``), else the NetCDF
    variable's ``units`` attribute, else the registry entry's units."""
    attrs = getattr(data, "attrs", None) or {}
    channels = list(data.channels)
    var_attrs = attrs.get("var_attrs") or {}
    info_units = getattr(getattr(data, "info", None), "units", None) or None
    out = []
    for c, declared in zip(channels, _per_channel(attrs.get("units"), channels), strict=True):
        units = declared or (var_attrs.get(c) or {}).get("units") or info_units
        out.append(str(units) if units else None)
    return out


def _pair(value) -> tuple[float | None, float | None] | None:
    if value is None:
        return None
    lo, hi = (None if v is None or not np.isfinite(float(v)) else float(v) for v in value)
    return lo, hi


def _cf_range(attrs: dict) -> tuple[float | None, float | None] | None:
    """The CF ``valid_range`` / ``valid_min`` / ``valid_max`` attributes of a variable."""
    if "valid_range" in attrs:
        return _pair(np.asarray(attrs["valid_range"], dtype=float).ravel()[:2])
    if "valid_min" in attrs or "valid_max" in attrs:
        return _pair((attrs.get("valid_min"), attrs.get("valid_max")))
    return None


def valid_ranges(data) -> list[dict]:
    """``[{"units", "valid_range": [lo, hi], "range_source": text}]`` per channel (see the module's docstring)."""
    attrs = getattr(data, "attrs", None) or {}
    channels = list(data.channels)
    declared = attrs.get("valid_range", attrs.get("value_range"))
    var_attrs = attrs.get("var_attrs") or {}
    field_ = attrs.get("field") or getattr(getattr(data, "info", None), "field", None)
    out = []
    for c, units, own in zip(channels, channel_units(data), _per_channel(declared, channels), strict=True):
        if own is not None:
            pair, source = _pair(own), "declared by the data"
        elif _cf_range(var_attrs.get(c) or {}) is not None:
            pair, source = _cf_range(var_attrs[c]), "the variable's valid_range attribute"
        elif units and units.strip().lower() in UNIT_RANGES:
            pair, source = UNIT_RANGES[units.strip().lower()], f"units {units}"
        elif not units and field_ in FIELD_RANGES:
            pair, source = FIELD_RANGES[field_], f"{field_} data"
        else:
            pair, source = (None, None), "not known"
        out.append({"units": units, "valid_range": list(pair), "range_source": source})
    return out


# ============================================================================ one streaming pass
@dataclass
class Violation:
    """Values outside one pair of bounds: how many, the most extreme, and where the first one is."""

    count: int = 0
    extreme: float | None = None
    where: tuple | None = None  # (segment, step, *spatial index) of the first one
    value: float | None = None


@dataclass
class ChannelScan:
    """What one pass saw of one channel: counts, finite extremes, a sample, and bound violations."""

    count: int = 0
    missing: int = 0  # NaN, mask False or null_value
    low: float = np.inf  # of the observed finite values
    high: float = -np.inf
    sample: list = field(default_factory=list)
    violations: dict = field(default_factory=dict)  # name -> Violation; "inf" always, others per bounds

    def quantiles(self) -> dict[str, float]:
        values = np.concatenate(self.sample) if self.sample else np.zeros(0)
        if values.size == 0:
            return {}
        return {f"{q:g}": float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES), strict=True)}


def _note(v: Violation, bad: np.ndarray, values: np.ndarray, origin: tuple, lower: bool) -> None:
    n = int(bad.sum())
    if not n:
        return
    picked = values[bad]
    extreme = float(picked.min() if lower else picked.max())
    if v.extreme is None or (extreme < v.extreme if lower else extreme > v.extreme):
        v.extreme = extreme
    if v.where is None:
        idx = np.unravel_index(int(np.argmax(bad)), bad.shape)
        v.where = (origin[0], origin[1] + int(idx[0]), *(int(i) for i in idx[1:]))
        v.value = float(values[idx])
    v.count += n


def scan_values(data: SpatioTemporalData, ranges=None, bounds: dict | None = None,
                sample_size: int = _SAMPLE) -> list[ChannelScan]:
    """One pass over ``data`` (in chunks of time steps, so lazy data are streamed), per channel.

    Args:
        data: grid ``(T, C, H, W)`` or sensor ``(T, N, C)`` segments.
        ranges: ``[(segment, start, stop), ...]`` to look at; default every step of every segment.
        bounds: ``{name: [(lo, hi) per channel]}``; values of observed entries below ``lo`` are counted
            as violation ``name + "_below"``, above ``hi`` as ``name + "_above"`` (None = unbounded).
        sample_size: values per channel kept (evenly strided) for quantiles; 0 keeps none.

    Infinite values that are not masked are counted as violation ``"inf"``; missing values (NaN, mask
    False, ``null_value``) are counted, not judged.
    """
    ranges = [(i, 0, n) for i, n in enumerate(data.lengths)] if ranges is None else list(ranges)
    bounds = bounds or {}
    nch = data.num_channels
    scans = [ChannelScan() for _ in range(nch)]
    for s in scans:
        s.violations["inf"] = Violation()
        for name in bounds:
            s.violations[f"{name}_below"], s.violations[f"{name}_above"] = Violation(), Violation()
    per_step = int(np.prod(data.segments[0].shape[1:])) or 1
    total = sum(b - a for _, a, b in ranges) * per_step // max(nch, 1)
    stride = max(1, total // max(sample_size, 1))
    axis = 1 if data.kind == "grid" else 2  # the channel axis of a (t, ...) chunk
    for seg, a, b in ranges:
        arr, m = data.segments[seg], data.segment_mask(seg)
        for t, e in time_blocks(arr, a, b):
            x = np.moveaxis(np.asarray(to_numpy(arr[t:e]), dtype=np.float64), axis, 0)
            observed = np.ones(x.shape, bool)
            if m is not None:
                observed &= np.moveaxis(to_numpy(m[t:e]).astype(bool), axis, 0)
            if data.null_value is not None:
                observed &= x != data.null_value
            for c, scan in enumerate(scans):
                xc, oc = x[c], observed[c]
                finite = np.isfinite(xc)
                valid = oc & finite
                scan.count += xc.size
                scan.missing += int((~oc | np.isnan(xc)).sum())
                _note(scan.violations["inf"], oc & np.isinf(xc), xc, (seg, t), lower=False)
                v = xc[valid]
                if v.size:
                    scan.low, scan.high = min(scan.low, float(v.min())), max(scan.high, float(v.max()))
                    if sample_size:
                        # a copy: a strided view would keep the whole block alive, and so the whole split
                        scan.sample.append(v[::stride].copy())
                for name, pairs in bounds.items():
                    lo, hi = pairs[c]
                    if lo is not None:
                        _note(scan.violations[f"{name}_below"], valid & (xc < lo), xc, (seg, t), lower=True)
                    if hi is not None:
                        _note(scan.violations[f"{name}_above"], valid & (xc > hi), xc, (seg, t), lower=False)
    return scans


# ============================================================================ the profile
def training_view(dm) -> tuple[SpatioTemporalData, list | None]:
    """The data and step ranges a data module trains on (generated data: its scaler's sample)."""
    from .adapters.arrays import from_numpy

    if isinstance(dm.data, SpatioTemporalData):
        dm.setup("fit")
        return dm.data, dm.ranges["train"]
    sample = dm.training_sample()  # (B, T, C, H, W) of generated sequences
    data = from_numpy(sample, layout="BTCHW", channels=list(dm.data.channels), name=dm.data.name,
                      attrs=dict(getattr(dm.data, "attrs", {}) or {}))
    data.info = dm.data.info
    return data, None


def make_profile(data: SpatioTemporalData, scans: list[ChannelScan], ranges: list[dict]) -> dict:
    """The profile dict (see the module's docstring) from a pass over ``data``'s training steps;
    ``ranges`` are :func:`valid_ranges` of ``data``."""
    attrs = data.attrs or {}
    field_ = attrs.get("field") or getattr(data.info, "field", None)
    dtypes = {np.dtype(s.dtype) for s in data.segments}
    grid = None
    if data.kind == "grid":
        grid = {"shape": list(data.spatial_shape)}
        for key in ("lat", "lon", "y", "x"):
            values = (data.coords or {}).get(key)
            if values is not None and len(values):
                grid[key] = [float(values[0]), float(values[-1])]
    step = attrs.get("step")
    if step is None and data.times is not None and data.times[0] is not None and len(data.times[0]) > 1:
        step = np.median(np.diff(data.times[0]))
    channels = []
    for name, scan, rng in zip(data.channels, scans, ranges, strict=True):
        seen = scan.count - scan.missing - scan.violations["inf"].count
        channels.append({
            "name": name, "units": rng["units"], "valid_range": rng["valid_range"], "range_source": rng["range_source"],
            "count": int(scan.count),
            "missing": float(scan.missing / scan.count) if scan.count else 1.0,
            "min": float(scan.low) if seen else None,
            "max": float(scan.high) if seen else None,
            "quantiles": scan.quantiles(),
        })
    ids = attrs.get("sensor_ids")
    return {
        "kind": data.kind,
        "field": field_,
        "dtype": str(max(dtypes, key=lambda d: d.itemsize)) if len(dtypes) else None,
        "step_seconds": _seconds(step),
        "no_coverage_nan": field_ == "precip",
        "sensor_ids": [str(i) for i in ids] if ids is not None and data.kind == "sensor" else None,
        "grid": grid,
        "channels": channels,
    }


def _seconds(step) -> float | None:
    if step is None:
        return None
    try:
        import pandas as pd

        return float(pd.Timedelta(step).total_seconds())
    except (ValueError, TypeError):
        return None


def duration(seconds: float) -> str:
    """``300`` -> ``"5 min"``, ``86400`` -> ``"1 d"``: a time step for messages."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def format_profile(profile: dict | None) -> str:
    """The profile as a small text table (``stpatch info RUN``)."""
    if not profile:
        return "no data profile stored (the run was trained before profiles were kept)"
    head = [f"{profile['kind']} data", f"field {profile.get('field') or 'not known'}",
            f"dtype {profile.get('dtype')}"]
    if profile.get("step_seconds"):
        head.append(f"step {duration(profile['step_seconds'])}")
    if profile.get("sensor_ids"):
        head.append(f"{len(profile['sensor_ids'])} sensors")
    if profile.get("grid"):
        head.append("grid " + " x ".join(str(s) for s in profile["grid"]["shape"]))
    lines = ["data profile of the training split: " + ", ".join(head)]
    if profile.get("no_coverage_nan"):
        lines.append("NaN means no coverage: the forecast stays NaN where the input had none")
    cols = ["channel", "units", "valid range", "min", "q01", "median", "q99", "max", "missing"]
    rows = []
    for ch in profile["channels"]:
        lo, hi = ch["valid_range"]
        q = ch.get("quantiles") or {}
        rows.append([ch["name"], ch.get("units") or "-",
                     f"[{_num(lo) if lo is not None else '-inf'}, {_num(hi) if hi is not None else 'inf'}]",
                     _num(ch["min"]), _num(q.get("0.01")), _num(q.get("0.5")), _num(q.get("0.99")),
                     _num(ch["max"]), f"{100 * ch['missing']:.1f} %"])
    widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols))]
    for r in [cols, *rows]:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    lines.append("valid range from: " + "; ".join(f"{ch['name']}: {ch['range_source']}" for ch in profile["channels"]))
    return "\n".join(lines)
