"""Weather metrics: latitude weights, latitude-weighted RMSE and anomaly correlation (WeatherBench 1).

``lat_weights``: cos(latitude) normalised to mean 1. ``lat_weighted_rmse`` (WeatherBench 1 /
ClimaX): per sample and channel, sqrt of the weighted mean of the squared error over ``H, W``;
then averaged over samples (WeatherBench 2 takes the sqrt after the time mean instead; not this).
``lat_weighted_acc`` (WeatherBench 1): anomalies against a given climatology, centred by their
mean over samples and space, weighted correlation pooled over samples and space of a lead time.
Both give ``(T, C)`` statistics; the accumulator reports the channel mean and, with
``per_channel``, ``"name/ch{i}"``. Metrics that list the input ``lat`` receive ``lat_weights(lat)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch

from .core import (
    ArrayLike,
    Reduce,
    Stats,
    as_tensor,
    div,
    fin_mean,
    prepare,
    prepare_climatology,
    reduce_horizons,
    require_grid,
    zero_where_invalid,
)
from .registry import register_input, register_metric

__all__ = ["lat_weighted_acc", "lat_weighted_rmse", "lat_weights"]


def lat_weights(lat_degrees: ArrayLike | Sequence[float]) -> torch.Tensor:
    """``(H,)`` latitudes in degrees -> ``(H,)`` float64 weights ``cos(lat) / mean(cos(lat))``."""
    lat = as_tensor(lat_degrees, "lat").to(torch.float64)
    if lat.ndim != 1 or lat.numel() == 0:
        raise ValueError(f"lat must be a non-empty 1-D array (H,), got shape {tuple(lat.shape)}")
    if bool((lat.abs() > 90).any()):
        raise ValueError("latitudes must lie in [-90, 90] degrees")
    w = torch.cos(torch.deg2rad(lat))
    return w / w.mean()


def _lat_column(w: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if w.shape != (like.shape[3],):
        raise ValueError(f"lat has {w.shape[0] if w.ndim == 1 else tuple(w.shape)} entries, "
                         f"expected H={like.shape[3]} for shape {tuple(like.shape)}")
    return w.to(device=like.device, dtype=like.dtype).view(1, 1, 1, -1, 1)


def _stats_lat_rmse(p, t, m, lat: torch.Tensor) -> Stats:
    """``lat``: the weights of :func:`lat_weights`."""
    require_grid(p, "lat_weighted_rmse")
    w = _lat_column(lat, p)
    d = p - t
    err = zero_where_invalid(d * d, m) * w
    wsum = (torch.where(m, w, torch.zeros((), dtype=p.dtype, device=p.device)) if m is not None
            else w.expand(p.shape))
    den = wsum.sum(dim=(-2, -1))  # (B, T, C)
    valid = den > 0
    per_sample = torch.sqrt(err.sum(dim=(-2, -1)) / torch.where(valid, den, torch.ones_like(den)))
    return {"sum": zero_where_invalid(per_sample, valid).sum(0), "n": valid.sum(0).to(p.dtype)}  # (T, C)


def _stats_acc(p, t, m, climatology: torch.Tensor, lat: torch.Tensor) -> Stats:
    """``climatology`` broadcast to the target; ``lat``: the weights of :func:`lat_weights`."""
    require_grid(p, "lat_weighted_acc")
    w = _lat_column(lat, p)
    fa, a = p - climatology, t - climatology  # forecast and observed anomalies
    v = torch.ones_like(p) if m is None else m.to(p.dtype)
    fa, a = zero_where_invalid(fa, m), zero_where_invalid(a, m)
    wv = w * v
    dims = (0, 3, 4)  # pooled over samples and space: (T, C)
    return {
        "n": v.sum(dims), "f": fa.sum(dims), "a": a.sum(dims), "w": wv.sum(dims),
        "wf": (wv * fa).sum(dims), "wa": (wv * a).sum(dims), "wfa": (wv * fa * a).sum(dims),
        "wff": (wv * fa * fa).sum(dims), "waa": (wv * a * a).sum(dims),
    }


def _fin_acc(s: Stats, centered: bool) -> torch.Tensor:
    if centered:  # subtract the (unweighted) mean anomaly, as WeatherBench 1
        mf, ma = div(s["f"], s["n"]), div(s["a"], s["n"])
    else:
        mf = ma = torch.zeros_like(s["n"])
    num = s["wfa"] - ma * s["wf"] - mf * s["wa"] + mf * ma * s["w"]
    dff = s["wff"] - 2 * mf * s["wf"] + mf * mf * s["w"]
    daa = s["waa"] - 2 * ma * s["wa"] + ma * ma * s["w"]
    return div(num, torch.sqrt(dff.clamp_min(0) * daa.clamp_min(0)))


def lat_weighted_rmse(pred: ArrayLike, target: ArrayLike, lat: ArrayLike | Sequence[float], *,
                      mask: ArrayLike | None = None, per_channel: bool = False,
                      reduce: Reduce = "horizon") -> torch.Tensor:
    """Latitude-weighted RMSE (WeatherBench 1 / ClimaX). ``(B, T, C, H, W), lat (H,) -> (T,)``.

    Per sample, lead time and channel: ``sqrt(sum_hw w_h e^2 / sum_hw w_h)`` (valid entries), then
    the mean over samples; ``per_channel=True`` returns ``(T, C)``, otherwise the channel mean.
    ``w_h = cos(lat_h)`` normalised to mean 1. Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    values = fin_mean(_stats_lat_rmse(p, t, m, lat_weights(lat)))
    return reduce_horizons(values if per_channel else values.mean(dim=1), reduce)


def lat_weighted_acc(pred: ArrayLike, target: ArrayLike, climatology: ArrayLike,
                     lat: ArrayLike | Sequence[float], *, mask: ArrayLike | None = None,
                     centered: bool = True, per_channel: bool = False,
                     reduce: Reduce = "horizon") -> torch.Tensor:
    """Latitude-weighted anomaly correlation (WeatherBench 1). ``(B, T, C, H, W) -> (T,)``.

    ``f' = pred - clim``, ``o' = target - clim`` (``climatology`` broadcastable to target); with
    ``centered`` each is reduced by its mean over samples and space; then per lead time and
    channel ``ACC = sum w f' o' / sqrt(sum w f'^2 * sum w o'^2)``, sums over samples and ``H, W``.
    ``per_channel=True`` returns ``(T, C)``, otherwise the channel mean. Higher is better
    (1 = perfect, in [-1, 1]); by name it is the centred form.
    """
    p, t, m = prepare(pred, target, mask)
    values = _fin_acc(_stats_acc(p, t, m, prepare_climatology(climatology, t), lat_weights(lat)), centered)
    return reduce_horizons(values if per_channel else values.mean(dim=1), reduce)


register_input("lat", "latitudes in degrees, shape (H,)", prepare=lat_weights)
register_metric("lat_weighted_rmse", _stats_lat_rmse, higher_is_better=False, inputs=("lat",),
                doc=lat_weighted_rmse.__doc__)
register_metric("lat_weighted_acc", _stats_acc, finalize=partial(_fin_acc, centered=True), higher_is_better=True,
                inputs=("climatology", "lat"), doc=lat_weighted_acc.__doc__)
