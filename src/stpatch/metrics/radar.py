"""Radar / precipitation metrics: contingency table, CSI, POD, FAR and the fractions skill score.

``csi``, ``pod``, ``far`` from the contingency table of ``pred >= thr`` vs ``target >= thr``
summed over the batch and all other dimensions of a lead time; pairs with a non-finite value are
left out (as pysteps). ``fss`` (Roberts & Lean 2008, pysteps): binary fields, fractions in a
``scale`` x ``scale`` zero-padded window, sums pooled over the batch (like pysteps'
``fss_accum``) per lead time. A zero denominator gives NaN everywhere.

By name: ``"csi@{threshold}"`` (``"csi@1.0"``), likewise ``pod``/``far``, and
``"fss@{threshold}/{scale}px"`` (``"fss@1.0/8px"``); a bare ``"csi"`` or ``"fss"`` takes the
accumulator's ``thresholds`` (and ``fss_scale``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import (
    ArrayLike,
    Reduce,
    Stats,
    div,
    other_dims,
    prepare,
    reduce_horizons,
    require_grid,
    work_dtype,
)
from .registry import register_metric

__all__ = ["contingency_table", "csi", "far", "fss", "pod"]


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise ValueError(f"fss scale must be a positive whole number of pixels, got {scale!r}")
    return int(scale)


def _scale(value) -> int:
    """An FSS window in pixels from a name (``"8"``) or a grid value."""
    if isinstance(value, str):
        if not value.isdigit():
            raise ValueError(f"fss scale must be a positive whole number of pixels, got {value!r}")
        value = int(value)
    return _check_scale(value)


def _stats_contingency(p, t, m, threshold: float) -> Stats:
    valid = torch.isfinite(p) & torch.isfinite(t)
    if m is not None:
        valid &= m
    fe, oe = (p >= threshold) & valid, (t >= threshold) & valid
    dims = other_dims(p)
    return {
        "hits": (fe & oe).sum(dims).to(p.dtype),
        "misses": (~fe & oe).sum(dims).to(p.dtype),
        "false_alarms": (fe & ~oe).sum(dims).to(p.dtype),
        "correct_negatives": (valid & ~fe & ~oe).sum(dims).to(p.dtype),
    }


def _fin_csi(s: Stats) -> torch.Tensor:
    return div(s["hits"], s["hits"] + s["misses"] + s["false_alarms"])


def _fin_pod(s: Stats) -> torch.Tensor:
    return div(s["hits"], s["hits"] + s["misses"])


def _fin_far(s: Stats) -> torch.Tensor:
    return div(s["false_alarms"], s["hits"] + s["false_alarms"])


def _box_mean(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Fraction of True in a ``scale`` x ``scale`` window, zeros outside: bool ``(N, H, W)`` -> float64.

    Window placement as scipy's ``uniform_filter(mode="constant")`` (used by pysteps):
    ``scale // 2`` before the pixel and ``scale - 1 - scale // 2`` after it (matters for even
    scales). Exact integer window counts from an integral image, then one division.
    """
    dtype = work_dtype(x.device)
    if scale == 1:
        return x.to(dtype)
    before, after = scale // 2, scale - 1 - scale // 2
    # one extra leading zero row/column so that integral[i] = sum of padded rows < i
    padded = F.pad(x.to(torch.int32), (before + 1, after, before + 1, after))
    integral = padded.cumsum(-1, dtype=torch.int32).cumsum(-2, dtype=torch.int32)
    counts = (integral[..., scale:, scale:] - integral[..., :-scale, scale:]
              - integral[..., scale:, :-scale] + integral[..., :-scale, :-scale])
    return counts.to(dtype) / (scale * scale)


def _stats_fss(p, t, m, threshold: float, scale: int) -> Stats:
    require_grid(p, "fss")
    # non-finite and masked entries count as below the threshold (pysteps sets NaN to thr - 1)
    fe = torch.isfinite(p) & (p >= threshold)
    oe = torch.isfinite(t) & (t >= threshold)
    if m is not None:
        fe, oe = fe & m, oe & m
    sf = _box_mean(fe.flatten(0, 2), scale).reshape(p.shape)
    so = _box_mean(oe.flatten(0, 2), scale).reshape(p.shape)
    dims = (0, 2, 3, 4)
    return {"ff": (sf * sf).sum(dims), "oo": (so * so).sum(dims), "fo": (sf * so).sum(dims)}


def _fin_fss(s: Stats) -> torch.Tensor:
    den = s["ff"] + s["oo"]
    return 1.0 - div(s["ff"] - 2.0 * s["fo"] + s["oo"], den)


def contingency_table(pred: ArrayLike, target: ArrayLike, threshold: float, *,
                      mask: ArrayLike | None = None) -> dict[str, torch.Tensor]:
    """Counts of ``pred >= threshold`` vs ``target >= threshold`` per lead time, each ``(T,)``.

    Keys ``hits``, ``misses``, ``false_alarms``, ``correct_negatives``; summed over the batch and
    all other dimensions; masked pairs and pairs with a non-finite value are left out.
    """
    p, t, m = prepare(pred, target, mask)
    return _stats_contingency(p, t, m, threshold)


def csi(pred: ArrayLike, target: ArrayLike, threshold: float, *, mask: ArrayLike | None = None,
        reduce: Reduce = "horizon") -> torch.Tensor:
    """Critical success index ``hits / (hits + misses + false_alarms)``; NaN if no event at all.

    Events are ``>= threshold``; table as :func:`contingency_table`. Higher is better (1 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(_fin_csi(_stats_contingency(p, t, m, threshold)), reduce)


def pod(pred: ArrayLike, target: ArrayLike, threshold: float, *, mask: ArrayLike | None = None,
        reduce: Reduce = "horizon") -> torch.Tensor:
    """Probability of detection ``hits / (hits + misses)``; NaN if no observed event.

    Events are ``>= threshold``; table as :func:`contingency_table`. Higher is better (1 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(_fin_pod(_stats_contingency(p, t, m, threshold)), reduce)


def far(pred: ArrayLike, target: ArrayLike, threshold: float, *, mask: ArrayLike | None = None,
        reduce: Reduce = "horizon") -> torch.Tensor:
    """False alarm ratio ``false_alarms / (hits + false_alarms)``; NaN if no forecast event.

    Events are ``>= threshold``; table as :func:`contingency_table`. Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(_fin_far(_stats_contingency(p, t, m, threshold)), reduce)


def fss(pred: ArrayLike, target: ArrayLike, threshold: float, scale: int, *,
        mask: ArrayLike | None = None, reduce: Reduce = "horizon") -> torch.Tensor:
    """Fractions skill score at a ``scale`` x ``scale`` pixel window. ``(B, T, C, H, W) -> (T,)``.

    As ``pysteps.verification.spatialscores.fss`` per field, with the sums ``sum S_f^2``,
    ``sum S_o^2``, ``sum S_f S_o`` pooled over the batch and channels (pysteps' ``fss_accum``):
    ``1 - sum (S_f - S_o)^2 / sum (S_f^2 + S_o^2)``; NaN when neither field has an event.
    Masked and non-finite entries count as below the threshold. Higher is better (1 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(_fin_fss(_stats_fss(p, t, m, threshold, _check_scale(scale))), reduce)


for _name, _fin, _higher, _fn in (("csi", _fin_csi, True, csi), ("pod", _fin_pod, True, pod),
                                  ("far", _fin_far, False, far)):
    register_metric(f"{_name}@{{threshold}}", _stats_contingency, finalize=_fin, higher_is_better=_higher,
                    params={"threshold": float}, example=f"{_name}@1.0", doc=_fn.__doc__)
del _name, _fin, _higher, _fn
register_metric("fss@{threshold}/{scale}px", _stats_fss, finalize=_fin_fss, higher_is_better=True,
                params={"threshold": float, "scale": _scale}, example="fss@1.0/8px", doc=fss.__doc__)
