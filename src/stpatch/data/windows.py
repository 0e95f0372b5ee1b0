"""Sliding windows as an index map, chronological splits, and the PyTorch window dataset.

A window is ``t_in`` input steps followed by ``t_out`` target steps of one segment.  Windows
are stored as an index map ``(segment, start)``; nothing is copied until a batch is built, and
:meth:`WindowDataset.window` returns plain views of the segment (numpy) or lazy slices (dask).

Splits are chronological.  ``split`` may be

* fractions ``(0.7, 0.1, 0.2)``: each segment is cut in time at 70 % and 80 %;
* two dates ``("2019-03-22", "2019-03-26")`` (or ``{"val": d1, "test": d2}``): steps before
  ``d1`` train, from ``d1`` to before ``d2`` validate, from ``d2`` test (needs timestamps);
* ``"event"``: whole segments (events) held out: the last segment is the test set; with three
  or more segments the second-to-last validates, otherwise the trailing 20 % (at least one
  window) of each training segment validates;
* a dict ``{"train": [...], "val": [...], "test": [...]}`` of segment indices or
  ``(segment, start, stop)`` step ranges.

No window crosses a split boundary or a segment boundary.

Missing values: a window whose inputs, or whose targets, are all missing is dropped
(``empty_windows="drop"``, the default), or raises (``"error"``), or is kept (``"keep"``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .core import SpatioTemporalData, time_features, to_numpy
from .scalers import Scaler
from .streaming import read_blocks

__all__ = [
    "SPLITS",
    "split_ranges",
    "window_starts",
    "observed_steps",
    "WindowDataset",
    "input_batch",
    "collate",
]

SPLITS = ("train", "val", "test")


def _is_date(x) -> bool:
    if isinstance(x, str):
        try:
            np.datetime64(x)
            return True
        except ValueError:
            return False
    return isinstance(x, np.datetime64 | _dt.date) or type(x).__name__ == "Timestamp"


def _frac_ranges(lengths, fracs) -> dict[str, list[tuple[int, int, int]]]:
    fracs = [float(f) for f in fracs]
    if len(fracs) == 2:
        fracs = [fracs[0], 0.0, fracs[1]]
    if len(fracs) != 3 or any(f < -1e-9 for f in fracs) or sum(fracs) > 1.0 + 1e-9:
        raise ValueError(
            f"split fractions should be (train, val, test) >= 0 summing to at most 1, got {tuple(fracs)}"
        )
    fracs = [max(f, 0.0) for f in fracs]
    cum = np.cumsum([0.0] + fracs)
    out = {k: [] for k in SPLITS}
    for seg, n in enumerate(lengths):
        b = [int(round(n * c)) for c in cum]
        for k, a, e in zip(SPLITS, b[:-1], b[1:], strict=True):
            if e > a:
                out[k].append((seg, a, e))
    return out


def _date_ranges(lengths, dates, times) -> dict[str, list[tuple[int, int, int]]]:
    if times is None or any(t is None for t in times):
        raise ValueError(f"a split by dates {dates} needs timestamps, but this data has none")
    d1, d2 = (np.datetime64(d, "ns") for d in dates)
    if d2 < d1:
        raise ValueError(f"split dates should be (val_start, test_start) in order, got {dates}")
    out = {k: [] for k in SPLITS}
    for seg, (n, t) in enumerate(zip(lengths, times, strict=True)):
        b1 = int(np.searchsorted(t, d1, side="left"))
        b2 = int(np.searchsorted(t, d2, side="left"))
        for k, a, e in (("train", 0, b1), ("val", b1, b2), ("test", b2, n)):
            if e > a:
                out[k].append((seg, a, e))
    return out


def _event_ranges(lengths, window) -> dict[str, list[tuple[int, int, int]]]:
    n = len(lengths)
    if n < 2:
        raise ValueError(f"split='event' holds out whole segments and needs at least 2, found {n}")
    out = {"train": [], "val": [], "test": [(n - 1, 0, lengths[-1])]}
    if n >= 3:
        out["val"].append((n - 2, 0, lengths[-2]))
        out["train"] = [(i, 0, lengths[i]) for i in range(n - 2)]
    else:
        for i in range(n - 1):
            T = lengths[i]
            nv = max(window, int(round(0.2 * T)))
            if T - nv >= window:
                out["train"].append((i, 0, T - nv))
                out["val"].append((i, T - nv, T))
            else:
                out["train"].append((i, 0, T))
    return out


def split_ranges(lengths: Sequence[int], split=None, times=None, window: int = 1) -> dict[str, list]:
    """Chronological split of segments into step ranges.

    Parameters
    ----------
    lengths: number of steps of each segment.
    split: see the module docstring; None means ``(0.7, 0.1, 0.2)``.
    times: per-segment datetime64 arrays (needed for date splits).
    window: ``t_in + t_out``; used by ``"event"`` to keep at least one validation window.

    Returns
    -------
    ``{"train": [(segment, start, stop), ...], "val": [...], "test": [...]}`` (stop exclusive).

    >>> split_ranges([100], (0.7, 0.1, 0.2))["val"]
    [(0, 70, 80)]
    """
    lengths = [int(n) for n in lengths]
    if split is None:
        split = (0.7, 0.1, 0.2)
    if isinstance(split, str):
        if split.lower() in ("event", "events", "segment", "segments"):
            return _event_ranges(lengths, window)
        raise ValueError(f"unknown split {split!r}; expected fractions, two dates, 'event' or a dict")
    if isinstance(split, dict):
        keys = set(split)
        if keys <= {"val", "test"} and keys and all(_is_date(v) for v in split.values()):
            return _date_ranges(lengths, (split.get("val", split.get("test")), split["test"]), times)
        if not keys <= set(SPLITS):
            raise ValueError(f"split dict keys should be among {SPLITS}, got {sorted(keys)}")
        out = {k: [] for k in SPLITS}
        for k, items in split.items():
            for it in items if isinstance(items, list | tuple) else [items]:
                if isinstance(it, int | np.integer):
                    seg, a, e = int(it), 0, None
                else:
                    seg, a, e = (int(v) if v is not None else None for v in it)
                if not -len(lengths) <= seg < len(lengths):
                    raise ValueError(
                        f"split[{k!r}] names segment {seg}, but there are {len(lengths)} segments"
                    )
                seg %= len(lengths)
                e = lengths[seg] if e is None else min(e, lengths[seg])
                out[k].append((seg, a, e))
        return out
    split = list(split)
    if len(split) == 2 and all(_is_date(d) for d in split):
        return _date_ranges(lengths, split, times)
    if all(isinstance(f, int | float | np.number) for f in split):
        return _frac_ranges(lengths, split)
    raise ValueError(
        f"cannot read split {split!r}: expected fractions like (0.7, 0.1, 0.2), two dates "
        "(val_start, test_start), 'event' or a dict of segments"
    )


def window_starts(a: int, b: int, window: int, stride: int = 1) -> np.ndarray:
    """Start steps of the windows of length ``window`` inside ``[a, b)``."""
    if b - a < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(a, b - window + 1, stride, dtype=np.int64)


def observed_steps(data: SpatioTemporalData, seg: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Bool ``(stop - start,)``: whether step ``t`` of segment ``seg`` (from ``start``, default the
    whole segment) has at least one observed value.

    Read in blocks (:mod:`stpatch.data.streaming`) so lazy data are streamed.
    """
    arr = data.segments[seg]
    m = data.segment_mask(seg)
    stop = int(arr.shape[0]) if stop is None else int(stop)
    if m is None and data.null_value is None and not np.issubdtype(np.dtype(arr.dtype), np.floating):
        return np.ones(stop - start, dtype=bool)
    out = np.empty(stop - start, dtype=bool)
    for a, b, _, valid in read_blocks(arr, m, data.null_value, start, stop):
        out[a - start : b - start] = valid.reshape(valid.shape[0], -1).any(1)
    return out


def collate(samples: list[dict]) -> dict:
    """Stack dict samples into a batch (via numpy: cheap even when torch's threads are busy)."""
    out = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        if isinstance(vals[0], torch.Tensor):
            out[k] = torch.from_numpy(np.stack([v.numpy() for v in vals]))
        else:
            out[k] = torch.as_tensor(np.stack([np.asarray(v) for v in vals]))
    return out


def _prepare(window, mask, null_value, scaler) -> tuple[np.ndarray, np.ndarray]:
    """Materialise a window, build its validity mask, scale it and zero the missing values."""
    w = to_numpy(window).astype(np.float32, copy=False)
    valid = np.isfinite(w)
    if mask is not None:
        valid &= to_numpy(mask).astype(bool, copy=False)
    if null_value is not None:
        valid &= w != null_value
    if scaler is not None:
        w = scaler.transform(w)
    w = np.where(valid, w, np.float32(0)).astype(np.float32, copy=False)
    return w, valid


def input_batch(data: SpatioTemporalData, t_in: int, scaler: Scaler | None = None) -> dict:
    """The last ``t_in`` steps of every segment as one model input batch (for prediction).

    Returns ``{"x": (S, t_in, ...), "x_mask": bool like x, "index": (S,)}`` plus ``"tod"``/``"dow"``
    ``(S, t_in)`` when timestamps are known, where S is the number of segments.
    """
    xs, ms, tods, dows = [], [], [], []
    for i, seg in enumerate(data.segments):
        T = int(seg.shape[0])
        if T < t_in:
            raise ValueError(
                f"{data.name!r}: segment {i} has {T} steps, fewer than t_in = {t_in} needed as input"
            )
        m = data.segment_mask(i)
        w, valid = _prepare(seg[T - t_in :], None if m is None else m[T - t_in :], data.null_value, scaler)
        xs.append(w)
        ms.append(valid)
        t = data.segment_times(i)
        if t is not None:
            tod, dow = time_features(t[T - t_in :])
            tods.append(tod)
            dows.append(dow)
    out = {
        "x": torch.from_numpy(np.stack(xs)),
        "x_mask": torch.from_numpy(np.stack(ms)),
        "index": torch.arange(len(xs), dtype=torch.long),
    }
    if tods and len(tods) == len(xs):
        out["tod"] = torch.from_numpy(np.stack(tods))
        out["dow"] = torch.from_numpy(np.stack(dows))
    return out


class WindowDataset(Dataset):
    """Windows of one split as a PyTorch dataset of dict samples.

    Each sample (before collation) holds

    * ``"x"``: float32 ``(T_in, C, H, W)`` or ``(T_in, N, C)``, scaled, missing values set to 0;
    * ``"y"``: float32 targets ``(T_out, ...)`` likewise;
    * ``"x_mask"``, ``"y_mask"``: bool like ``x``/``y``, True = observed;
    * ``"tod"`` float32 ``(T_in,)`` in [0, 1) and ``"dow"`` int64 ``(T_in,)`` (Monday = 0), plus
      ``"y_tod"``/``"y_dow"`` ``(T_out,)``, when timestamps are known;
    * ``"index"``: the window's id in this dataset.

    Parameters
    ----------
    data: the series.
    t_in, t_out: numbers of input and target steps.
    ranges: ``[(segment, start, stop), ...]`` step ranges this split may use.
    stride: steps between consecutive window starts.
    scaler: a fitted :class:`~stpatch.data.scalers.Scaler` (None = no scaling).
    empty_windows: ``"drop"`` (default), ``"error"`` or ``"keep"`` windows whose inputs or
        targets are all missing.
    observed: a dict of :func:`observed_steps` per range, keyed ``(segment, start, stop)``: those it
        holds are used, those it lacks are computed and added.
    """

    def __init__(
        self,
        data: SpatioTemporalData,
        t_in: int,
        t_out: int,
        ranges: Sequence[tuple[int, int, int]],
        stride: int = 1,
        scaler: Scaler | None = None,
        empty_windows: str = "drop",
        observed: dict | None = None,
        split_name: str = "",
    ):
        if t_in < 1 or t_out < 0:
            raise ValueError(f"t_in must be >= 1 and t_out >= 0, got t_in={t_in}, t_out={t_out}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if empty_windows not in ("drop", "error", "keep"):
            raise ValueError(f"empty_windows should be 'drop', 'error' or 'keep', got {empty_windows!r}")
        self.data = data
        self.t_in, self.t_out, self.stride = int(t_in), int(t_out), int(stride)
        self.window_length = self.t_in + self.t_out
        self.scaler = scaler
        self.split_name = split_name
        self.ranges = [tuple(int(v) for v in r) for r in ranges]
        segs, starts, keeps = [], [], []
        observed = {} if observed is None else observed
        for seg, a, b in self.ranges:
            s = window_starts(a, b, self.window_length, self.stride)
            segs.append(np.full(s.shape, seg, dtype=np.int64))
            starts.append(s)
            if empty_windows != "keep" and len(s):
                # only this range's steps are read: a split never reads the steps of another
                if (seg, a, b) not in observed:
                    observed[(seg, a, b)] = observed_steps(data, seg, a, b)
                c = np.concatenate([[0], np.cumsum(observed[(seg, a, b)])])
                r = s - a
                has_x = c[r + self.t_in] - c[r] > 0
                has_y = (c[r + self.window_length] - c[r + self.t_in] > 0) if self.t_out else np.ones_like(has_x)
                keeps.append(has_x & has_y)
            else:
                keeps.append(np.ones(s.shape, bool))
        seg_ids = np.concatenate(segs) if segs else np.zeros(0, np.int64)
        starts_ = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self.num_dropped = 0
        if empty_windows != "keep" and len(seg_ids):
            keep = np.concatenate(keeps)
            if not keep.all():
                if empty_windows == "error":
                    bad = np.flatnonzero(~keep)[:5]
                    raise ValueError(
                        f"{data.name!r} {split_name} split: {int((~keep).sum())} window(s) have inputs or targets "
                        f"that are entirely missing (NaN/masked), e.g. (segment, start) "
                        f"{[(int(seg_ids[i]), int(starts_[i])) for i in bad]}; use empty_windows='drop' to skip them"
                    )
                self.num_dropped = int((~keep).sum())
                seg_ids, starts_ = seg_ids[keep], starts_[keep]
        self.index = np.stack([seg_ids, starts_], axis=1) if len(seg_ids) else np.zeros((0, 2), np.int64)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def window(self, i: int):
        """Raw, unscaled ``(x, y)`` of window ``i``: views of the segment (no copy for numpy)."""
        seg, s = (int(v) for v in self.index[i])
        arr = self.data.segments[seg]
        return arr[s : s + self.t_in], arr[s + self.t_in : s + self.window_length]

    def window_times(self, i: int):
        """Timestamps ``(t_in,)`` and ``(t_out,)`` of window ``i`` (None when unknown)."""
        seg, s = (int(v) for v in self.index[i])
        t = self.data.segment_times(seg)
        if t is None:
            return None, None
        return t[s : s + self.t_in], t[s + self.t_in : s + self.window_length]

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        i = int(i) % len(self)
        seg, s = (int(v) for v in self.index[i])
        e = s + self.window_length
        m = self.data.segment_mask(seg)
        w, valid = _prepare(
            self.data.segments[seg][s:e], None if m is None else m[s:e], self.data.null_value, self.scaler
        )
        out = {
            "x": torch.from_numpy(np.ascontiguousarray(w[: self.t_in])),
            "y": torch.from_numpy(np.ascontiguousarray(w[self.t_in :])),
            "x_mask": torch.from_numpy(np.ascontiguousarray(valid[: self.t_in])),
            "y_mask": torch.from_numpy(np.ascontiguousarray(valid[self.t_in :])),
            "index": torch.tensor(i, dtype=torch.long),
        }
        t = self.data.segment_times(seg)
        if t is not None:
            tod, dow = time_features(t[s:e])
            out["tod"] = torch.from_numpy(tod[: self.t_in])
            out["dow"] = torch.from_numpy(dow[: self.t_in])
            out["y_tod"] = torch.from_numpy(tod[self.t_in :])
            out["y_dow"] = torch.from_numpy(dow[self.t_in :])
        return out

    def __repr__(self) -> str:
        return (
            f"WindowDataset({self.data.name!r}, split={self.split_name!r}, windows={len(self)}, "
            f"t_in={self.t_in}, t_out={self.t_out}, stride={self.stride})"
        )
