"""The data guard: input that makes no sense never gets a confident forecast.

One module, used wherever data come in: every adapter (through ``SpatioTemporalData.validate``, which
calls :func:`check_arrays` and :func:`check_times`), training (:func:`profile_training`), prediction
and evaluation (:func:`conform`, :func:`check_values`, :func:`check_missing`). The policies:

* **structure**: values are numbers (bool, complex, text and object arrays are refused); every axis
  holds at least one entry; times have no NaT and strictly increase (duplicated or unsorted times are
  refused, naming the first offending step).
* **missing values** (NaN, a False mask, the declared ``null_value``) are masked, as in training. A
  forecast input (the last ``t_in`` steps of a series) with no observed value at all, or with more than
  :func:`missing_limit` of its values missing, is refused with how much is missing and where.
* **Inf** is an error everywhere, training included: it comes from an overflow or a division by zero
  upstream, not from a missing reading (write NaN for those). So are values beyond float32's range.
* **physically impossible values** (outside the channel's valid range, see
  :func:`stpatch.data.profile.valid_ranges`: rain rate < 0, speed < 0, kelvin outside 150..350,
  video outside [0, 1], or the data's own declaration) are an error, training included.
* **values far outside what training saw** (beyond the training range by more than :data:`FAR` times
  its width) are a :class:`DataGuardWarning`, an error with ``strict``; so are a time step or grid
  coordinates other than the training data's.
* **integer input for a float-trained run** is converted only where the scale is known: unsigned
  integers for [0, 1] data (uint8 video / 255); otherwise it is an error.
* **no coverage**: where the data kind's convention is that NaN means "not observed" (radar, field
  ``precip``), the forecast is NaN wherever the input had no valid value in any input step.

Every message says what was expected, what came and what to do. :class:`DataGuardError` is a
``ValueError``, so the command line reports it as a user error.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from .profile import FLOAT32_MAX, duration, make_profile, scan_values, training_view, valid_ranges

if TYPE_CHECKING:
    from .core import SpatioTemporalData

__all__ = [
    "DataGuardError",
    "DataGuardWarning",
    "FAR",
    "MAX_MISSING",
    "check_arrays",
    "check_times",
    "profile_training",
    "conform",
    "check_values",
    "missing_limit",
    "check_missing",
    "keep_no_coverage",
]

#: How far outside the training range a value may be before it is "far": this many training-range widths.
FAR = 1.0
#: The share of a forecast input's values that may be missing (raised to the training split's share
#: plus 10 points when the training data were sparser, e.g. radar composites with wide no-coverage areas).
MAX_MISSING = 0.5


class DataGuardError(ValueError):
    """Input that would give a meaningless forecast: says what was expected, what came, what to do."""


class DataGuardWarning(UserWarning):
    """Input that is allowed but suspicious (an error with ``strict=True`` / ``--strict``)."""


_AXES = {"grid": ("steps", "channels", "rows", "columns"), "sensor": ("steps", "sensors", "channels")}


# ============================================================================ structure (every adapter)
def check_arrays(segments: list, kind: str, who: str) -> None:
    """Every segment holds numbers and has at least one entry along every axis."""
    for i, seg in enumerate(segments):
        dtype = np.dtype(seg.dtype)
        if dtype.kind not in "fiu":
            raise DataGuardError(
                f"{who}: segment {i} holds {dtype} values; expected numbers (float, or integer). "
                "Convert the values to float (NaN where missing); masks go in mask=, not in the values"
            )
        empty = [name for name, n in zip(_AXES[kind], seg.shape, strict=True) if n == 0]
        if empty:
            raise DataGuardError(
                f"{who}: segment {i} has shape {tuple(seg.shape)}: no {empty[0]}; expected at least one of "
                f"each of {', '.join(_AXES[kind])}. Is the file or table empty?"
            )


def check_times(times: list, who: str) -> None:
    """Each segment's times (datetime64 ``(T,)`` or None) have no NaT and strictly increase."""
    for i, t in enumerate(times):
        if t is None or len(t) == 0:
            continue
        nat = np.flatnonzero(np.isnat(t))
        if nat.size:
            raise DataGuardError(
                f"{who}: segment {i} has {nat.size} missing time(s) (NaT), the first at step {nat[0]}; "
                "expected a time for every step: fix or drop those rows"
            )
        d = np.diff(t.astype("datetime64[ns]").astype(np.int64))
        bad = np.flatnonzero(d <= 0)
        if bad.size:
            k = int(bad[0])
            what = "repeats" if d[k] == 0 else "comes before"
            raise DataGuardError(
                f"{who}: segment {i}: the time of step {k + 1} ({t[k + 1]}) {what} the time of step {k} ({t[k]}) "
                f"({int((d == 0).sum())} repeated, {int((d < 0).sum())} out of order); expected strictly "
                "increasing times: sort the rows by time and keep one row per time"
            )


# ============================================================================ training
def profile_training(dm) -> dict:
    """The run's data profile from the training split of ``dm``; raises :class:`DataGuardError` on
    Inf, values beyond float32 or physically impossible values in it (one pass over the data)."""
    data, ranges = training_view(dm)
    rngs = valid_ranges(data)
    scans = scan_values(data, ranges, _bounds(rngs, None))
    _raise_errors(data, scans, rngs, None, "the training split of " + repr(data.name))
    return make_profile(data, scans, rngs)


# ============================================================================ prediction and evaluation
def conform(data: SpatioTemporalData, meta: dict, profile: dict | None, strict: bool = False,
            who: str = "the input") -> SpatioTemporalData:
    """``data`` made fit for a run trained on ``meta``/``profile``, or a :class:`DataGuardError`.

    Checks the kind, channels and sensors (sensors known by id are put in the training order), converts
    integers where their scale is known, and warns (``strict``: refuses) when the time step or the grid
    coordinates differ from the training data's.
    """
    grid = meta["kind"] == "grid"
    layout = "(B, T, C, H, W)" if grid else "(B, T, N, C)"
    if data.kind != meta["kind"]:
        raise DataGuardError(f"the checkpoint forecasts {meta['kind']} data {layout}, but {who} is {data.kind} data")
    if data.num_channels != meta["in_channels"]:
        raise DataGuardError(f"the model was trained on {meta['in_channels']} channel(s); {who} has "
                             f"{data.num_channels} (layout {layout})")
    if not grid:
        data = _sensor_order(data, meta, profile, who)
    if profile:
        data = _dtype(data, profile, who)
        _suspicious([*_step_notes(data, profile, who), *_grid_notes(data, profile, who)], strict)
    return data


def _sensor_order(data: SpatioTemporalData, meta: dict, profile: dict | None, who: str) -> SpatioTemporalData:
    want, ids = (profile or {}).get("sensor_ids"), data.attrs.get("sensor_ids")
    if want and ids is not None and list(ids) != list(want):
        ids = [str(i) for i in ids]
        missing, extra = [s for s in want if s not in ids], [s for s in ids if s not in want]
        if missing or extra or len(set(ids)) != len(ids):
            raise DataGuardError(
                f"the model was trained on {len(want)} sensors; {who} has {len(ids)}"
                + (f", lacking {missing[:5]}" + (" ..." if len(missing) > 5 else "") if missing else "")
                + (f", with unknown {extra[:5]}" + (" ..." if len(extra) > 5 else "") if extra else "")
                + ". Give one column per training sensor (NaN where a sensor has no reading)"
            )
        order = [ids.index(s) for s in want]  # same sensors, another order: put them in the training order
        masks = None if data.mask is None else [None if m is None else m[:, order] for m in data.mask]
        return data.replace(segments=[s[:, order] for s in data.segments], mask=masks,
                            attrs={**data.attrs, "sensor_ids": list(want)})
    if data.num_nodes != meta["num_nodes"]:
        raise DataGuardError(f"the model was trained on {meta['num_nodes']} sensors; {who} has {data.num_nodes}")
    return data


def _dtype(data: SpatioTemporalData, profile: dict, who: str) -> SpatioTemporalData:
    kinds = {np.dtype(s.dtype).kind for s in data.segments}
    trained = np.dtype(profile.get("dtype") or "float32")
    if kinds <= {"f"} or trained.kind in "iu":
        return data
    ranges = [tuple(ch["valid_range"]) for ch in profile["channels"]]
    if kinds == {"u"} and all(r == (0.0, 1.0) for r in ranges):
        # the scale is known: [0, 1] data stored as unsigned integers (uint8 video: 0..255)
        segs = [s.astype(np.float32) / np.float32(np.iinfo(s.dtype).max) for s in data.segments]
        return data.replace(segments=segs)
    dtype = next(np.dtype(s.dtype) for s in data.segments if np.dtype(s.dtype).kind != "f")
    units = ", ".join(f"{ch['name']} ({ch.get('units') or 'units not known'})" for ch in profile["channels"])
    raise DataGuardError(
        f"{who} holds {dtype} values, but the run was trained on {trained} values ({units}) and the scale of "
        "integers is not known for this data. Convert the input to float in the training units "
        "(e.g. array.astype('float32'), dividing by the scale it was stored with)"
    )


def _step_notes(data: SpatioTemporalData, profile: dict, who: str) -> list[str]:
    trained = profile.get("step_seconds")
    times = [t for t in (data.times or []) if t is not None and len(t) > 1]
    if not trained or not times:
        return []
    step = float(np.median(np.diff(times[-1])).astype("timedelta64[ns]").astype(np.int64)) / 1e9
    if abs(step - trained) <= 0.01 * trained:
        return []
    return [f"{who} has a time step of {duration(step)}, the model was trained on steps of {duration(trained)}: "
            "each forecast step would mean another length of time. Resample the input to the training step"]


def _grid_notes(data: SpatioTemporalData, profile: dict, who: str) -> list[str]:
    grid, coords = profile.get("grid"), data.coords if isinstance(data.coords, dict) else {}
    if not grid:
        return []
    notes = []
    for key in ("lat", "lon", "y", "x"):
        values = coords.get(key)
        if key not in grid or values is None or not len(values):
            continue
        first, last = grid[key]
        n = grid["shape"][0 if key in ("lat", "y") else 1]
        tol = abs(last - first) / max(n - 1, 1) / 2 or 1e-6  # half a training grid spacing
        if abs(float(values[0]) - first) > tol or abs(float(values[-1]) - last) > tol:
            notes.append(f"{who} spans {key} {float(values[0]):.4g}..{float(values[-1]):.4g}, the model was "
                         f"trained on {key} {first:.4g}..{last:.4g}: it would forecast a place it did not learn. "
                         "Crop or regrid the input to the training grid")
    return notes


def _suspicious(notes: list[str], strict: bool) -> None:
    if notes and strict:
        raise DataGuardError("; ".join(notes) + " (refused because strict is on)")
    for note in notes:
        warnings.warn(note + " (strict=True / --strict refuses this)", DataGuardWarning, stacklevel=3)


def _far_bounds(profile: dict | None) -> list[tuple[float | None, float | None]] | None:
    if not profile:
        return None
    out = []
    for ch in profile["channels"]:
        lo, hi = ch.get("min"), ch.get("max")
        if lo is None or hi is None:
            out.append((None, None))
            continue
        margin = FAR * ((hi - lo) or max(abs(hi), 1.0))
        out.append((lo - margin, hi + margin))
    return out


def _bounds(rngs: list[dict], profile: dict | None) -> dict:
    physical = [tuple(r["valid_range"]) for r in rngs]
    out = {"float32": [(-FLOAT32_MAX, FLOAT32_MAX)] * len(rngs), "physical": physical}
    far = _far_bounds(profile)
    if far is not None:
        out["far"] = far
    return out


def _unit_suffix(units: str | None) -> str:
    """`` mm/h`` after a number; units that are words (``intensity in [0, 1]``) are not appended."""
    return f" {units}" if units and " " not in units.strip() else ""


def _where(data: SpatioTemporalData, where: tuple) -> str:
    seg, step, *idx = where
    t = data.segment_times(seg)
    text = f"segment {seg}, step {step}" + (f" ({t[step]})" if t is not None else "")
    if data.kind == "grid":
        return text + f", row {idx[0]}, column {idx[1]}"
    ids = data.attrs.get("sensor_ids")
    return text + (f", sensor {ids[idx[0]]!r}" if ids is not None and len(ids) > idx[0] else f", sensor {idx[0]}")


def _raise_errors(data: SpatioTemporalData, scans: list, rngs: list[dict], profile: dict | None, who: str,
                  strict: bool = False) -> None:
    """Errors (Inf, beyond float32, physically impossible) raise; values far from training warn."""
    errors, notes = [], []
    names = [ch["name"] for ch in profile["channels"]] if profile else data.channels  # the names training used
    for c, (name, scan, rng) in enumerate(zip(names, scans, rngs, strict=True)):
        v = scan.violations
        units = _unit_suffix(rng.get("units"))
        if v["inf"].count:
            errors.append(f"channel {name!r} holds {v['inf'].count} infinite value(s) (the first {v['inf'].value:+g} at "
                          f"{_where(data, v['inf'].where)}); expected finite numbers, NaN where a value is missing. "
                          "Inf comes from an overflow or a division by zero upstream: fix it there, or write NaN")
        for side in ("below", "above"):
            f32 = v[f"float32_{side}"]
            if f32.count:
                errors.append(f"channel {name!r} holds {f32.count} value(s) beyond float32's range (e.g. {f32.extreme:g} "
                              f"at {_where(data, f32.where)}); the model computes in float32. Check the input's units")
        for side, bound in zip(("below", "above"), rng["valid_range"], strict=True):
            p = v[f"physical_{side}"]
            if p.count:
                word, rel, most = ("minimum", ">=", "lowest") if side == "below" else ("maximum", "<=", "highest")
                errors.append(
                    f"channel {name!r} has {p.count} value(s) {side} the physically valid {word} {bound:g}{units} "
                    f"({rng['range_source']}): the {most} is {p.extreme:g}, the first at {_where(data, p.where)}. "
                    f"Expected {name} {rel} {bound:g}{units}; fix the input (a missing value is NaN, not a fill "
                    "value such as -9999), or declare the data's range (attrs={'valid_range': (low, high)}) when training")
        for side in ("below", "above"):
            f = v.get(f"far_{side}")
            if f is not None and f.count:
                ch = profile["channels"][c]
                notes.append(
                    f"{who}: channel {name!r} has {f.count} value(s) far {side} what training saw "
                    f"({'down' if side == 'below' else 'up'} to {f.extreme:g}{units}, the first at {_where(data, f.where)}; "
                    f"training range [{ch['min']:.4g}, {ch['max']:.4g}]{units}): the forecast would be an "
                    "extrapolation. Check the input's units and scaling")
    if errors:
        raise DataGuardError(f"{who}: " + "; ".join(errors))
    _suspicious(notes, strict)


def check_values(data: SpatioTemporalData, profile: dict | None, ranges=None, strict: bool = False,
                 who: str = "the input") -> None:
    """Raise :class:`DataGuardError` on Inf, values beyond float32 or physically impossible values in
    ``ranges`` (``[(segment, start, stop)]``, default all) of ``data``; warn (``strict``: raise) on values
    far outside the training range of ``profile``.

    The valid ranges are the profile's (what the run was trained with); without a profile, the data's own.
    """
    rngs = profile["channels"] if profile else valid_ranges(data)
    scans = scan_values(data, ranges, _bounds(rngs, profile), sample_size=0)
    _raise_errors(data, scans, rngs, profile, who, strict)


def missing_limit(profile: dict | None, max_missing: float | None = None) -> float:
    """The share of a forecast input's values that may be missing: ``max_missing``, else
    :data:`MAX_MISSING` (raised to the training split's missing share + 0.1, at most 0.99)."""
    if max_missing is not None:
        if not 0.0 <= max_missing <= 1.0:
            raise ValueError(f"max_missing is a share of the input's values in [0, 1], got {max_missing}")
        return float(max_missing)
    trained = max((ch["missing"] for ch in (profile or {}).get("channels", [])), default=0.0)
    return max(MAX_MISSING, min(0.99, trained + 0.1))


def check_missing(x_mask, data: SpatioTemporalData, t_in: int, limit: float, who: str = "the input") -> None:
    """Refuse forecast inputs ``x_mask`` (bool ``(S, t_in, ...)``, True = observed; one per segment of
    ``data``) with no observed value, or with more than ``limit`` of their values missing."""
    mask = np.asarray(x_mask, dtype=bool)
    for i in range(mask.shape[0]):
        m = mask[i].reshape(t_in, -1)
        share = 1.0 - float(m.mean())
        if share <= limit and m.any():
            continue
        t = data.segment_times(i)
        T = data.lengths[i]
        steps = [T - t_in + k for k in range(t_in)]
        per_step = ", ".join(f"step {s}{f' ({t[s]})' if t is not None else ''}: {100 * (1 - m[k].mean()):.0f} %"
                             for k, s in enumerate(steps))
        what = ("no observed value at all (everything is NaN, masked or the null value)" if not m.any()
                else f"{100 * share:.1f} % of its {m.size} values missing, more than the limit of {100 * limit:.0f} %")
        raise DataGuardError(
            f"{who}: the last {t_in} steps of segment {i} (the forecast's input) have {what}; missing per step: "
            f"{per_step}. Expected observed values in the input steps: give more recent data with coverage"
            + ("" if not m.any() else ", or raise max_missing (--max-missing) to accept sparser input")
        )


def keep_no_coverage(forecast: np.ndarray, x_mask, profile: dict | None) -> np.ndarray:
    """Grids whose NaN means "no coverage" (radar): ``forecast`` ``(B, T_out, C, H, W)`` is NaN wherever
    ``x_mask`` ``(B, t_in, C, H, W)`` has no observed value in any input step."""
    if not profile or not profile.get("no_coverage_nan") or profile.get("kind") != "grid":
        return forecast
    covered = np.asarray(x_mask, dtype=bool).any(axis=1, keepdims=True)  # (B, 1, C, H, W)
    return np.where(covered, forecast, np.float32(np.nan)).astype(forecast.dtype, copy=False)
