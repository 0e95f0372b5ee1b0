"""Sensor / traffic metrics with the BasicTS (DCRNN) null conventions: masked MAE, RMSE, MAPE.

An entry is valid when the target is not NaN, not within ``null_atol`` of ``null_value`` and
``mask`` is True; the mean runs over valid entries of a lead time only. MAPE is a *fraction*
(0.07 = 7 %) and also drops targets within ``zero_atol`` of 0. RMSE is the sqrt of the pooled
MSE of a lead time (not a mean of RMSEs). All three: lower is better (0 = perfect).
"""

from __future__ import annotations

import math
from functools import partial

import torch

from .core import (
    ArrayLike,
    Reduce,
    Stats,
    fin_mean,
    fin_sqrt_mean,
    other_dims,
    prepare,
    reduce_horizons,
    zero_where_invalid,
)
from .registry import register_metric

__all__ = ["NULL_ATOL", "ZERO_ATOL", "masked_mae", "masked_mape", "masked_rmse"]

NULL_ATOL = 5e-5  # BasicTS: |target - null_value| <= 5e-5 counts as missing
ZERO_ATOL = 5e-5  # BasicTS: |target| <= 5e-5 is left out of MAPE


def _sensor_valid(t: torch.Tensor, m: torch.Tensor | None, null_value: float | None, null_atol: float):
    valid = ~torch.isnan(t)
    if null_value is not None and not math.isnan(null_value):
        valid &= (t - null_value).abs() > null_atol
    return valid if m is None else valid & m


def _stats_masked(p, t, m, kind: str, null_value: float | None, null_atol: float, zero_atol: float) -> Stats:
    valid = _sensor_valid(t, m, null_value, null_atol)
    d = p - t
    if kind == "abs":
        err = d.abs()
    elif kind == "sq":
        err = d * d
    else:  # "ape": absolute percentage error as a fraction, zero targets left out
        valid = valid & (t.abs() > zero_atol)
        err = (d / torch.where(valid, t, torch.ones_like(t))).abs()
    err = zero_where_invalid(err, valid)
    return {"sum": err.sum(dim=other_dims(err)), "n": valid.sum(dim=other_dims(valid)).to(p.dtype)}


def masked_mae(pred: ArrayLike, target: ArrayLike, *, null_value: float | None = math.nan,
               mask: ArrayLike | None = None, reduce: Reduce = "horizon",
               null_atol: float = NULL_ATOL) -> torch.Tensor:
    """BasicTS masked MAE: mean ``|pred - target|`` over valid entries per lead time. ``(B, T, ...) -> (T,)``.

    Valid: target not NaN, ``|target - null_value| > null_atol`` (skipped for NaN/None), and ``mask``.
    A lead time with no valid entry gives NaN. Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_mean(_stats_masked(p, t, m, "abs", null_value, null_atol, ZERO_ATOL)), reduce)


def masked_rmse(pred: ArrayLike, target: ArrayLike, *, null_value: float | None = math.nan,
                mask: ArrayLike | None = None, reduce: Reduce = "horizon",
                null_atol: float = NULL_ATOL) -> torch.Tensor:
    """BasicTS masked RMSE: sqrt of the mean squared error over valid entries per lead time.

    Valid entries as :func:`masked_mae`; pooled per lead time, not a mean of per-sample RMSEs.
    Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_sqrt_mean(_stats_masked(p, t, m, "sq", null_value, null_atol, ZERO_ATOL)), reduce)


def masked_mape(pred: ArrayLike, target: ArrayLike, *, null_value: float | None = math.nan,
                mask: ArrayLike | None = None, reduce: Reduce = "horizon",
                null_atol: float = NULL_ATOL, zero_atol: float = ZERO_ATOL) -> torch.Tensor:
    """BasicTS masked MAPE as a FRACTION (0.07 = 7 %): mean ``|pred - target| / |target|``.

    Over valid entries (as :func:`masked_mae`) whose target is not within ``zero_atol`` of 0.
    Multiply by 100 for the percentages papers print. Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_mean(_stats_masked(p, t, m, "ape", null_value, null_atol, zero_atol)), reduce)


for _name, _kind, _fin, _fn in (("masked_mae", "abs", fin_mean, masked_mae),
                                ("masked_rmse", "sq", fin_sqrt_mean, masked_rmse),
                                ("masked_mape", "ape", fin_mean, masked_mape)):
    register_metric(_name, partial(_stats_masked, kind=_kind, null_atol=NULL_ATOL, zero_atol=ZERO_ATOL),
                    finalize=_fin, higher_is_better=False, inputs=("null_value",), doc=_fn.__doc__)
del _name, _kind, _fin, _fn
