"""Forecast metrics per lead time, each convention named.

Layouts: grids ``(B, T, C, H, W)``, sensors ``(B, T, N, C)``; dimension 1 is always the lead
time. Every metric takes ``pred`` and ``target`` of the same shape (torch tensors or NumPy
arrays), an optional boolean ``mask`` broadcastable to them (True = valid), and returns a 1-D
tensor of length ``T``: one value per lead time. ``reduce="mean"`` returns the plain mean of
those ``T`` values instead (NaN horizons propagate). Sums run in float64 (float32 on MPS).

Conventions
-----------
==================  ============================================================================
video / grid        ``mse_per_frame``, ``mae_per_frame``: error summed over ``C, H, W`` of a frame,
                    averaged over sequences (OpenSTL / Moving MNIST). ``mse_per_pixel``,
                    ``mae_per_pixel``: mean over every entry of a lead time. ``rmse``: sqrt of the
                    per-pixel MSE; ``rmse_per_frame``: sqrt of the per-frame MSE (OpenSTL's RMSE).
                    ``psnr``: ``20 log10(data_range) - 10 log10(mse of the frame)`` per frame,
                    averaged over frames (identical frames give +inf, as OpenSTL); no uint8
                    quantisation. ``ssim``: torchmetrics' Gaussian SSIM (sigma 1.5, 11 px) per
                    frame with ``C`` as image channels, averaged over frames; OpenSTL uses
                    scikit-image's (7 px uniform window), so values differ slightly.
sensor              ``masked_mae``, ``masked_rmse``, ``masked_mape`` (BasicTS / DCRNN): an entry is
                    valid when the target is not NaN, not within ``null_atol`` of ``null_value``
                    and ``mask`` is True; the mean runs over valid entries of a lead time only.
                    MAPE is a *fraction* (0.07 = 7 %) and also drops targets within ``zero_atol``
                    of 0. RMSE is sqrt of the pooled MSE of a lead time (not a mean of RMSEs).
weather             ``lat_weights``: cos(latitude) normalised to mean 1. ``lat_weighted_rmse``
                    (WeatherBench 1 / ClimaX): per sample and channel, sqrt of the weighted mean of
                    the squared error over ``H, W``; then averaged over samples (WeatherBench 2
                    takes the sqrt after the time mean instead; not this). ``lat_weighted_acc``
                    (WeatherBench 1): anomalies against a given climatology, centred by their
                    mean over samples and space, weighted correlation pooled over samples and
                    space of a lead time.
precipitation       ``csi``, ``pod``, ``far`` from the contingency table of ``pred >= thr`` vs
                    ``target >= thr`` summed over the batch and all other dimensions of a lead
                    time; pairs with a non-finite value are left out (as pysteps). ``fss``
                    (Roberts & Lean 2008, pysteps): binary fields, fractions in a ``scale`` x
                    ``scale`` zero-padded window, sums pooled over the batch (like pysteps'
                    ``fss_accum``) per lead time. A zero denominator gives NaN everywhere.
==================  ============================================================================

Evaluation over a test set goes through :class:`MetricAccumulator`, which adds up sufficient
statistics (error sums and counts, contingency tables, per-frame score sums), so its result
equals one pass over the concatenated data. :func:`compute_metrics` is one accumulator update.

>>> import torch
>>> pred = torch.zeros(1, 2, 1, 2, 2); target = torch.ones(1, 2, 1, 2, 2)
>>> mse_per_frame(pred, target).tolist(), mse_per_pixel(pred, target).tolist()
([4.0, 4.0], [1.0, 1.0])
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = Union[torch.Tensor, np.ndarray]
Reduce = Literal["horizon", "mean"]
Stats = dict[str, torch.Tensor]

__all__ = [
    "METRIC_SUITES",
    "MetricAccumulator",
    "compute_metrics",
    "contingency_table",
    "csi",
    "far",
    "fss",
    "horizon_table",
    "lat_weighted_acc",
    "lat_weighted_rmse",
    "lat_weights",
    "mae_per_frame",
    "mae_per_pixel",
    "masked_mae",
    "masked_mape",
    "masked_rmse",
    "mse_per_frame",
    "mse_per_pixel",
    "pod",
    "psnr",
    "rmse",
    "rmse_per_frame",
    "ssim",
    "summarize",
]

#: Named metric suites. ``csi``/``pod``/``far`` expand to one entry per threshold (``"csi@1.0"``)
#: and ``fss`` to one per threshold and scale (``"fss@1.0/8px"``).
METRIC_SUITES: dict[str, tuple[str, ...]] = {
    "video": ("mse_per_frame", "mae_per_frame", "mse_per_pixel", "mae_per_pixel", "rmse",
              "rmse_per_frame", "psnr", "ssim"),
    "sensor": ("masked_mae", "masked_rmse", "masked_mape"),
    "weather": ("lat_weighted_rmse", "lat_weighted_acc"),
    "precip": ("csi", "pod", "far", "fss"),
}

NULL_ATOL = 5e-5  # BasicTS: |target - null_value| <= 5e-5 counts as missing
ZERO_ATOL = 5e-5  # BasicTS: |target| <= 5e-5 is left out of MAPE


# --------------------------------------------------------------------------- input handling


def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, (list, tuple, float, int)):
        return torch.as_tensor(np.asarray(x))
    raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _work_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _prepare(
    pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Check shapes; return ``pred, target`` in the working dtype and ``mask`` broadcast to them."""
    p, t = _as_tensor(pred, "pred"), _as_tensor(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred and target must have the same shape, got pred {tuple(p.shape)} and target {tuple(t.shape)}"
        )
    if p.ndim < 2:
        raise ValueError(f"expected at least (B, T, ...) dimensions, got shape {tuple(p.shape)}")
    dtype = _work_dtype(p.device)
    p, t = p.to(dtype), t.to(device=p.device, dtype=dtype)
    return p, t, _prepare_mask(mask, p)


def _prepare_mask(mask: ArrayLike | None, like: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    m = _as_tensor(mask, "mask").to(like.device)
    if m.dtype != torch.bool:
        if m.is_floating_point() or m.is_complex() or not bool(((m == 0) | (m == 1)).all()):
            raise TypeError(f"mask must be boolean (True = valid), got dtype {m.dtype}")
        m = m.bool()
    try:
        return torch.broadcast_to(m, like.shape)
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(m.shape)} does not broadcast to pred/target shape {tuple(like.shape)}"
        ) from None


def _require_grid(x: torch.Tensor, metric: str) -> None:
    if x.ndim != 5:
        raise ValueError(f"{metric} needs grids (B, T, C, H, W), got shape {tuple(x.shape)}")


def _other_dims(x: torch.Tensor) -> tuple[int, ...]:
    """Every dimension but the lead time (dim 1)."""
    return (0, *range(2, x.ndim))


def _frame_dims(x: torch.Tensor) -> tuple[int, ...]:
    """The dimensions of one frame (everything after B, T)."""
    return tuple(range(2, x.ndim))


def _frame_sum(x: torch.Tensor) -> torch.Tensor:
    """``(B, T, ...) -> (B, T)``."""
    return x.sum(dim=_frame_dims(x)) if x.ndim > 2 else x


def _zero_where_invalid(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    # torch.where rather than multiplication, so NaN in invalid entries cannot leak in
    return x if valid is None else torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with NaN where ``den == 0``."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.nan)


def _reduce(values: torch.Tensor, reduce: Reduce) -> torch.Tensor:
    if reduce == "horizon":
        return values
    if reduce == "mean":
        return values.mean(dim=0)
    raise ValueError(f"reduce must be 'horizon' or 'mean', got {reduce!r}")


# --------------------------------------------------------------------------- sufficient statistics
# Each metric is ``finalize(stats(...))``; stats are sums with a leading T axis, so they add up
# over batches (MetricAccumulator) and the functional form is the one-batch case.


def _stats_per_frame(p, t, m, kind: str) -> Stats:
    d = p - t
    err = _zero_where_invalid(d * d if kind == "sq" else d.abs(), m)
    frames = _frame_sum(err)  # (B, T)
    if m is None:
        n = torch.full((p.shape[1],), p.shape[0], dtype=p.dtype, device=p.device)
    else:  # a sequence counts at a lead time when its frame has any valid entry
        n = (m.flatten(2).any(-1) if m.ndim > 2 else m).sum(0).to(p.dtype)
    return {"sum": frames.sum(0), "n": n}


def _stats_per_pixel(p, t, m, kind: str) -> Stats:
    d = p - t
    err = _zero_where_invalid(d * d if kind == "sq" else d.abs(), m)
    if m is None:
        n = torch.full((p.shape[1],), p[:, 0].numel(), dtype=p.dtype, device=p.device)
    else:
        n = m.sum(dim=_other_dims(m)).to(p.dtype)
    return {"sum": err.sum(dim=_other_dims(err)), "n": n}


def _fin_mean(s: Stats) -> torch.Tensor:
    return _div(s["sum"], s["n"])


def _fin_sqrt_mean(s: Stats) -> torch.Tensor:
    return torch.sqrt(_div(s["sum"], s["n"]))


def _stats_psnr(p, t, m, data_range: float) -> Stats:
    d = p - t
    err = _frame_sum(_zero_where_invalid(d * d, m))
    count = _frame_sum(m.to(p.dtype)) if m is not None else torch.full_like(err, p[0, 0].numel())
    valid = count > 0  # frames with no valid entry are skipped
    mse = err / count.clamp_min(1)
    value = 20.0 * math.log10(data_range) - 10.0 * torch.log10(mse)  # mse == 0 -> +inf
    return {"sum": _zero_where_invalid(value, valid).sum(0), "n": valid.sum(0).to(p.dtype)}


def _stats_ssim(p, t, m, data_range: float, gaussian_kernel: bool, sigma: float, kernel_size: int) -> Stats:
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    _require_grid(p, "ssim")
    pad = int(3.5 * sigma + 0.5) if gaussian_kernel else (kernel_size - 1) // 2
    if min(p.shape[-2:]) <= pad:  # torchmetrics reflect-pads by the window radius
        raise ValueError(f"ssim needs H and W > {pad} for this window, got shape {tuple(p.shape)}")
    if m is not None:  # masked entries become 0 in both, so their values cannot matter
        p, t = _zero_where_invalid(p, m), _zero_where_invalid(t, m)
    work = p.dtype
    p, t = p.float(), t.float()  # float32 filtering: float64 convolutions are ~40x slower on CPU
    sums, counts = [], []
    for k in range(p.shape[1]):  # frame by frame: (B, C, H, W) per lead time
        values, full = tm_ssim(
            p[:, k], t[:, k], gaussian_kernel=gaussian_kernel, sigma=sigma, kernel_size=kernel_size,
            reduction="none", data_range=float(data_range), return_full_image=True,
        )
        if m is None:  # the map's mean in the working dtype, like the masked case
            valid = torch.ones_like(values, dtype=torch.bool)
            values = full.to(work).flatten(1).mean(1)
        else:  # average the SSIM map over the valid pixels of each frame
            mk = m[:, k].to(work)
            cnt = mk.flatten(1).sum(1)
            valid = cnt > 0
            values = (full.to(work) * mk).flatten(1).sum(1) / cnt.clamp_min(1)
        sums.append(_zero_where_invalid(values.to(work), valid).sum())
        counts.append(valid.sum().to(work))
    return {"sum": torch.stack(sums), "n": torch.stack(counts)}


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
    err = _zero_where_invalid(err, valid)
    return {"sum": err.sum(dim=_other_dims(err)), "n": valid.sum(dim=_other_dims(valid)).to(p.dtype)}


def _lat_column(w: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if w.shape != (like.shape[3],):
        raise ValueError(f"lat has {w.shape[0] if w.ndim == 1 else tuple(w.shape)} entries, "
                         f"expected H={like.shape[3]} for shape {tuple(like.shape)}")
    return w.to(device=like.device, dtype=like.dtype).view(1, 1, 1, -1, 1)


def _stats_lat_rmse(p, t, m, weights: torch.Tensor) -> Stats:
    _require_grid(p, "lat_weighted_rmse")
    w = _lat_column(weights, p)
    d = p - t
    err = _zero_where_invalid(d * d, m) * w
    wsum = (torch.where(m, w, torch.zeros((), dtype=p.dtype, device=p.device)) if m is not None
            else w.expand(p.shape))
    den = wsum.sum(dim=(-2, -1))  # (B, T, C)
    valid = den > 0
    per_sample = torch.sqrt(err.sum(dim=(-2, -1)) / torch.where(valid, den, torch.ones_like(den)))
    return {"sum": _zero_where_invalid(per_sample, valid).sum(0), "n": valid.sum(0).to(p.dtype)}  # (T, C)


def _fin_per_channel_mean(s: Stats) -> torch.Tensor:
    return _div(s["sum"], s["n"])  # (T, C)


def _stats_acc(p, t, m, clim: torch.Tensor, weights: torch.Tensor) -> Stats:
    _require_grid(p, "lat_weighted_acc")
    w = _lat_column(weights, p)
    fa, a = p - clim, t - clim  # forecast and observed anomalies
    v = torch.ones_like(p) if m is None else m.to(p.dtype)
    fa, a = _zero_where_invalid(fa, m), _zero_where_invalid(a, m)
    wv = w * v
    dims = (0, 3, 4)  # pooled over samples and space: (T, C)
    return {
        "n": v.sum(dims), "f": fa.sum(dims), "a": a.sum(dims), "w": wv.sum(dims),
        "wf": (wv * fa).sum(dims), "wa": (wv * a).sum(dims), "wfa": (wv * fa * a).sum(dims),
        "wff": (wv * fa * fa).sum(dims), "waa": (wv * a * a).sum(dims),
    }


def _fin_acc(s: Stats, centered: bool) -> torch.Tensor:
    if centered:  # subtract the (unweighted) mean anomaly, as WeatherBench 1
        mf, ma = _div(s["f"], s["n"]), _div(s["a"], s["n"])
    else:
        mf = ma = torch.zeros_like(s["n"])
    num = s["wfa"] - ma * s["wf"] - mf * s["wa"] + mf * ma * s["w"]
    dff = s["wff"] - 2 * mf * s["wf"] + mf * mf * s["w"]
    daa = s["waa"] - 2 * ma * s["wa"] + ma * ma * s["w"]
    return _div(num, torch.sqrt(dff.clamp_min(0) * daa.clamp_min(0)))


def _stats_contingency(p, t, m, threshold: float) -> Stats:
    valid = torch.isfinite(p) & torch.isfinite(t)
    if m is not None:
        valid &= m
    fe, oe = (p >= threshold) & valid, (t >= threshold) & valid
    dims = _other_dims(p)
    return {
        "hits": (fe & oe).sum(dims).to(p.dtype),
        "misses": (~fe & oe).sum(dims).to(p.dtype),
        "false_alarms": (fe & ~oe).sum(dims).to(p.dtype),
        "correct_negatives": (valid & ~fe & ~oe).sum(dims).to(p.dtype),
    }


def _fin_csi(s: Stats) -> torch.Tensor:
    return _div(s["hits"], s["hits"] + s["misses"] + s["false_alarms"])


def _fin_pod(s: Stats) -> torch.Tensor:
    return _div(s["hits"], s["hits"] + s["misses"])


def _fin_far(s: Stats) -> torch.Tensor:
    return _div(s["false_alarms"], s["hits"] + s["false_alarms"])


def _box_mean(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Fraction of True in a ``scale`` x ``scale`` window, zeros outside: bool ``(N, H, W)`` -> float64.

    Window placement as scipy's ``uniform_filter(mode="constant")`` (used by pysteps):
    ``scale // 2`` before the pixel and ``scale - 1 - scale // 2`` after it (matters for even
    scales). Exact integer window counts from an integral image, then one division.
    """
    dtype = _work_dtype(x.device)
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
    _require_grid(p, "fss")
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
    return 1.0 - _div(s["ff"] - 2.0 * s["fo"] + s["oo"], den)


# --------------------------------------------------------------------------- video / grid


def mse_per_frame(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
                  reduce: Reduce = "horizon") -> torch.Tensor:
    """Squared error summed over a frame, mean over sequences (OpenSTL / Moving MNIST MSE).

    ``(B, T, ...) -> (T,)``: ``mean_b sum_{c,h,w} (pred - target)^2``. With a mask only valid
    entries are summed and a sequence counts at a lead time if its frame has a valid entry.
    """
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_mean(_stats_per_frame(p, t, m, "sq")), reduce)


def mae_per_frame(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
                  reduce: Reduce = "horizon") -> torch.Tensor:
    """Absolute error summed over a frame, mean over sequences (OpenSTL MAE). ``(B, T, ...) -> (T,)``."""
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_mean(_stats_per_frame(p, t, m, "abs")), reduce)


def mse_per_pixel(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
                  reduce: Reduce = "horizon") -> torch.Tensor:
    """Mean squared error over every (valid) entry of a lead time. ``(B, T, ...) -> (T,)``.

    Equals ``mse_per_frame / (C * H * W)`` without a mask.
    """
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_mean(_stats_per_pixel(p, t, m, "sq")), reduce)


def mae_per_pixel(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
                  reduce: Reduce = "horizon") -> torch.Tensor:
    """Mean absolute error over every (valid) entry of a lead time. ``(B, T, ...) -> (T,)``."""
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_mean(_stats_per_pixel(p, t, m, "abs")), reduce)


def rmse(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
         reduce: Reduce = "horizon") -> torch.Tensor:
    """Per-pixel RMSE: ``sqrt(mse_per_pixel)`` per lead time. ``(B, T, ...) -> (T,)``.

    OpenSTL's "RMSE" is instead the sqrt of the per-frame (summed) MSE: :func:`rmse_per_frame`.
    """
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_sqrt_mean(_stats_per_pixel(p, t, m, "sq")), reduce)


def rmse_per_frame(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
                   reduce: Reduce = "horizon") -> torch.Tensor:
    """OpenSTL RMSE: ``sqrt(mse_per_frame)`` per lead time. ``(B, T, ...) -> (T,)``."""
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_sqrt_mean(_stats_per_frame(p, t, m, "sq")), reduce)


def psnr(pred: ArrayLike, target: ArrayLike, *, data_range: float = 1.0, mask: ArrayLike | None = None,
         reduce: Reduce = "horizon") -> torch.Tensor:
    """PSNR per frame, averaged over sequences (OpenSTL). ``(B, T, ...) -> (T,)``.

    For data in ``[0, data_range]``: ``20 log10(data_range) - 10 log10(mse)`` with ``mse`` the
    per-pixel MSE of one frame (valid entries only); a perfect frame gives +inf. The mean of
    per-frame PSNRs is not the PSNR of the mean MSE.
    """
    _check_range(data_range)
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_mean(_stats_psnr(p, t, m, data_range)), reduce)


def ssim(pred: ArrayLike, target: ArrayLike, *, data_range: float = 1.0, mask: ArrayLike | None = None,
         reduce: Reduce = "horizon", gaussian_kernel: bool = True, sigma: float = 1.5,
         kernel_size: int = 11) -> torch.Tensor:
    """SSIM per frame (torchmetrics, ``C`` as image channels), mean over sequences. ``(B, T, C, H, W) -> (T,)``.

    Each lead time is scored as a batch of ``B`` images ``(C, H, W)`` with torchmetrics'
    ``structural_similarity_index_measure`` (``reduction="none"``), filtered in float32; needs
    ``H, W >= 6`` for the default window. With a mask, masked entries are set to 0 in both fields before filtering and
    the SSIM map is averaged over the valid pixels of each frame.
    """
    _check_range(data_range)
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_mean(_stats_ssim(p, t, m, data_range, gaussian_kernel, sigma, kernel_size)), reduce)


# --------------------------------------------------------------------------- sensors


def masked_mae(pred: ArrayLike, target: ArrayLike, *, null_value: float | None = math.nan,
               mask: ArrayLike | None = None, reduce: Reduce = "horizon",
               null_atol: float = NULL_ATOL) -> torch.Tensor:
    """BasicTS masked MAE: mean ``|pred - target|`` over valid entries per lead time. ``(B, T, ...) -> (T,)``.

    Valid: target not NaN, ``|target - null_value| > null_atol`` (skipped for NaN/None), and ``mask``.
    A lead time with no valid entry gives NaN.
    """
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_mean(_stats_masked(p, t, m, "abs", null_value, null_atol, ZERO_ATOL)), reduce)


def masked_rmse(pred: ArrayLike, target: ArrayLike, *, null_value: float | None = math.nan,
                mask: ArrayLike | None = None, reduce: Reduce = "horizon",
                null_atol: float = NULL_ATOL) -> torch.Tensor:
    """BasicTS masked RMSE: sqrt of the mean squared error over valid entries per lead time."""
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_sqrt_mean(_stats_masked(p, t, m, "sq", null_value, null_atol, ZERO_ATOL)), reduce)


def masked_mape(pred: ArrayLike, target: ArrayLike, *, null_value: float | None = math.nan,
                mask: ArrayLike | None = None, reduce: Reduce = "horizon",
                null_atol: float = NULL_ATOL, zero_atol: float = ZERO_ATOL) -> torch.Tensor:
    """BasicTS masked MAPE as a FRACTION (0.07 = 7 %): mean ``|pred - target| / |target|``.

    Over valid entries (as :func:`masked_mae`) whose target is not within ``zero_atol`` of 0.
    Multiply by 100 for the percentages papers print.
    """
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_mean(_stats_masked(p, t, m, "ape", null_value, null_atol, zero_atol)), reduce)


# --------------------------------------------------------------------------- weather


def lat_weights(lat_degrees: ArrayLike | Sequence[float]) -> torch.Tensor:
    """``(H,)`` latitudes in degrees -> ``(H,)`` float64 weights ``cos(lat) / mean(cos(lat))``."""
    lat = _as_tensor(lat_degrees, "lat").to(torch.float64)
    if lat.ndim != 1 or lat.numel() == 0:
        raise ValueError(f"lat must be a non-empty 1-D array (H,), got shape {tuple(lat.shape)}")
    if bool((lat.abs() > 90).any()):
        raise ValueError("latitudes must lie in [-90, 90] degrees")
    w = torch.cos(torch.deg2rad(lat))
    return w / w.mean()


def lat_weighted_rmse(pred: ArrayLike, target: ArrayLike, lat: ArrayLike | Sequence[float], *,
                      mask: ArrayLike | None = None, per_channel: bool = False,
                      reduce: Reduce = "horizon") -> torch.Tensor:
    """Latitude-weighted RMSE (WeatherBench 1 / ClimaX). ``(B, T, C, H, W), lat (H,) -> (T,)``.

    Per sample, lead time and channel: ``sqrt(sum_hw w_h e^2 / sum_hw w_h)`` (valid entries), then
    the mean over samples; ``per_channel=True`` returns ``(T, C)``, otherwise the channel mean.
    """
    p, t, m = _prepare(pred, target, mask)
    values = _fin_per_channel_mean(_stats_lat_rmse(p, t, m, lat_weights(lat)))
    return _reduce(values if per_channel else values.mean(dim=1), reduce)


def _prepare_climatology(climatology: ArrayLike, like: torch.Tensor) -> torch.Tensor:
    c = _as_tensor(climatology, "climatology").to(device=like.device, dtype=like.dtype)
    try:
        return torch.broadcast_to(c, like.shape)
    except RuntimeError:
        raise ValueError(
            f"climatology of shape {tuple(c.shape)} does not broadcast to target shape {tuple(like.shape)}"
        ) from None


def lat_weighted_acc(pred: ArrayLike, target: ArrayLike, climatology: ArrayLike,
                     lat: ArrayLike | Sequence[float], *, mask: ArrayLike | None = None,
                     centered: bool = True, per_channel: bool = False,
                     reduce: Reduce = "horizon") -> torch.Tensor:
    """Latitude-weighted anomaly correlation (WeatherBench 1). ``(B, T, C, H, W) -> (T,)``.

    ``f' = pred - clim``, ``o' = target - clim`` (``climatology`` broadcastable to target); with
    ``centered`` each is reduced by its mean over samples and space; then per lead time and
    channel ``ACC = sum w f' o' / sqrt(sum w f'^2 * sum w o'^2)``, sums over samples and ``H, W``.
    ``per_channel=True`` returns ``(T, C)``, otherwise the channel mean.
    """
    p, t, m = _prepare(pred, target, mask)
    values = _fin_acc(_stats_acc(p, t, m, _prepare_climatology(climatology, t), lat_weights(lat)), centered)
    return _reduce(values if per_channel else values.mean(dim=1), reduce)


# --------------------------------------------------------------------------- precipitation


def contingency_table(pred: ArrayLike, target: ArrayLike, threshold: float, *,
                      mask: ArrayLike | None = None) -> dict[str, torch.Tensor]:
    """Counts of ``pred >= threshold`` vs ``target >= threshold`` per lead time, each ``(T,)``.

    Keys ``hits``, ``misses``, ``false_alarms``, ``correct_negatives``; summed over the batch and
    all other dimensions; masked pairs and pairs with a non-finite value are left out.
    """
    p, t, m = _prepare(pred, target, mask)
    return _stats_contingency(p, t, m, threshold)


def csi(pred: ArrayLike, target: ArrayLike, threshold: float, *, mask: ArrayLike | None = None,
        reduce: Reduce = "horizon") -> torch.Tensor:
    """Critical success index ``hits / (hits + misses + false_alarms)``; NaN if no event at all."""
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_csi(_stats_contingency(p, t, m, threshold)), reduce)


def pod(pred: ArrayLike, target: ArrayLike, threshold: float, *, mask: ArrayLike | None = None,
        reduce: Reduce = "horizon") -> torch.Tensor:
    """Probability of detection ``hits / (hits + misses)``; NaN if no observed event."""
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_pod(_stats_contingency(p, t, m, threshold)), reduce)


def far(pred: ArrayLike, target: ArrayLike, threshold: float, *, mask: ArrayLike | None = None,
        reduce: Reduce = "horizon") -> torch.Tensor:
    """False alarm ratio ``false_alarms / (hits + false_alarms)``; NaN if no forecast event."""
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_far(_stats_contingency(p, t, m, threshold)), reduce)


def fss(pred: ArrayLike, target: ArrayLike, threshold: float, scale: int, *,
        mask: ArrayLike | None = None, reduce: Reduce = "horizon") -> torch.Tensor:
    """Fractions skill score at a ``scale`` x ``scale`` pixel window. ``(B, T, C, H, W) -> (T,)``.

    As ``pysteps.verification.spatialscores.fss`` per field, with the sums ``sum S_f^2``,
    ``sum S_o^2``, ``sum S_f S_o`` pooled over the batch and channels (pysteps' ``fss_accum``):
    ``1 - sum (S_f - S_o)^2 / sum (S_f^2 + S_o^2)``; NaN when neither field has an event.
    Masked and non-finite entries count as below the threshold.
    """
    p, t, m = _prepare(pred, target, mask)
    return _reduce(_fin_fss(_stats_fss(p, t, m, threshold, _check_scale(scale))), reduce)


def _check_range(data_range: float) -> None:
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range!r}")


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise ValueError(f"fss scale must be a positive whole number of pixels, got {scale!r}")
    return int(scale)


# --------------------------------------------------------------------------- suites, accumulation


@dataclass(frozen=True)
class _Term:
    """One named metric: ``stats(p, t, m, clim) -> sums`` and ``finalize(sums) -> (T,) or (T, C)``."""

    name: str
    stats: Callable[..., Stats]
    finalize: Callable[[Stats], torch.Tensor]
    needs_climatology: bool = False


_SIMPLE = ("mse_per_frame", "mae_per_frame", "mse_per_pixel", "mae_per_pixel", "rmse", "rmse_per_frame",
           "psnr", "ssim", "masked_mae", "masked_rmse", "masked_mape", "lat_weighted_rmse",
           "lat_weighted_acc")
_THRESHOLDED = {"csi": _fin_csi, "pod": _fin_pod, "far": _fin_far}
_CAT_RE = re.compile(r"^(csi|pod|far)@(.+)$")
_FSS_RE = re.compile(r"^fss@(.+)/(\d+)px$")


def _fmt_thr(thr: float) -> str:
    return str(float(thr))


def _simple_term(name: str, *, data_range: float, null_value: float | None, weights: torch.Tensor | None) -> _Term:
    if name in ("mse_per_frame", "mae_per_frame", "rmse_per_frame"):
        kind = "abs" if name.startswith("mae") else "sq"
        fin = _fin_sqrt_mean if name.startswith("rmse") else _fin_mean
        return _Term(name, lambda p, t, m, c: _stats_per_frame(p, t, m, kind), fin)
    if name in ("mse_per_pixel", "mae_per_pixel", "rmse"):
        kind = "abs" if name.startswith("mae") else "sq"
        fin = _fin_sqrt_mean if name == "rmse" else _fin_mean
        return _Term(name, lambda p, t, m, c: _stats_per_pixel(p, t, m, kind), fin)
    if name == "psnr":
        return _Term(name, lambda p, t, m, c: _stats_psnr(p, t, m, data_range), _fin_mean)
    if name == "ssim":
        return _Term(name, lambda p, t, m, c: _stats_ssim(p, t, m, data_range, True, 1.5, 11), _fin_mean)
    if name.startswith("masked_"):
        kind = {"masked_mae": "abs", "masked_rmse": "sq", "masked_mape": "ape"}[name]
        fin = _fin_sqrt_mean if kind == "sq" else _fin_mean
        return _Term(name, lambda p, t, m, c: _stats_masked(p, t, m, kind, null_value, NULL_ATOL, ZERO_ATOL), fin)
    if weights is None:
        raise ValueError(f"{name} needs lat (latitudes in degrees, shape (H,))")
    if name == "lat_weighted_rmse":
        return _Term(name, lambda p, t, m, c: _stats_lat_rmse(p, t, m, weights), _fin_per_channel_mean)
    return _Term(name, lambda p, t, m, c: _stats_acc(p, t, m, c, weights),
                 lambda s: _fin_acc(s, True), needs_climatology=True)


def _build_terms(suite: str | Sequence[str], *, thresholds: Sequence[float], fss_scale: int | Sequence[int],
                 data_range: float, null_value: float | None, lat, has_climatology: bool) -> list[_Term]:
    if isinstance(suite, str):
        if suite not in METRIC_SUITES:
            raise ValueError(f"unknown metric suite {suite!r}; known: {sorted(METRIC_SUITES)}")
        names = list(METRIC_SUITES[suite])
        if suite == "weather" and not has_climatology:
            warnings.warn("weather suite without a climatology: lat_weighted_acc is left out", stacklevel=3)
            names.remove("lat_weighted_acc")
    else:
        names = list(suite)
    thresholds = [float(x) for x in np.atleast_1d(np.asarray(thresholds, dtype=np.float64))]
    scales = [_check_scale(s) for s in np.atleast_1d(np.asarray(fss_scale)).tolist()]
    _check_range(data_range)
    weights = lat_weights(lat) if lat is not None else None
    terms: list[_Term] = []
    for name in names:
        if name in _SIMPLE:
            terms.append(_simple_term(name, data_range=data_range, null_value=null_value, weights=weights))
        elif name in _THRESHOLDED:
            terms += [_cat_term(name, thr) for thr in thresholds]
        elif name == "fss":
            terms += [_fss_term(thr, s) for thr in thresholds for s in scales]
        elif (hit := _CAT_RE.match(name)) is not None:
            terms.append(_cat_term(hit.group(1), float(hit.group(2))))
        elif (hit := _FSS_RE.match(name)) is not None:
            terms.append(_fss_term(float(hit.group(1)), int(hit.group(2))))
        else:
            raise ValueError(f"unknown metric {name!r}; known: {sorted(_SIMPLE)} and csi/pod/far/fss")
    seen = [t.name for t in terms]
    if len(set(seen)) != len(seen):
        raise ValueError(f"metric names repeat: {seen}")
    return terms


def _cat_term(kind: str, thr: float) -> _Term:
    return _Term(f"{kind}@{_fmt_thr(thr)}", lambda p, t, m, c: _stats_contingency(p, t, m, thr), _THRESHOLDED[kind])


def _fss_term(thr: float, scale: int) -> _Term:
    return _Term(f"fss@{_fmt_thr(thr)}/{scale}px", lambda p, t, m, c: _stats_fss(p, t, m, thr, scale), _fin_fss)


class MetricAccumulator:
    """Accumulate a metric suite over batches; :meth:`compute` equals one pass over all of them.

    Sums of errors and counts, contingency tables, FSS sums and per-frame PSNR/SSIM sums are
    added up per lead time, so batch sizes and order do not matter.

    Args:
        suite: a name in :data:`METRIC_SUITES` or a list of metric names (``"csi@2.5"``,
            ``"fss@1.0/4px"`` are accepted too).
        lat: latitudes ``(H,)`` in degrees, for the weather metrics.
        climatology: broadcastable to the target; can also be given per :meth:`update`. The
            ``"weather"`` suite without one leaves out ``lat_weighted_acc`` (with a warning).
        thresholds, fss_scale: the precipitation thresholds and FSS window(s) in pixels.
        data_range: of the data, for PSNR and SSIM.
        null_value: missing-value marker of sensor targets (NaN/None: only NaN is missing).
        per_channel: also report weather metrics per channel (``"name/ch{i}"``) when ``C > 1``.

    >>> acc = MetricAccumulator("video")
    >>> for p, t in batches: acc.update(p, t)          # doctest: +SKIP
    >>> per_horizon = acc.compute()                    # doctest: +SKIP
    """

    def __init__(self, suite: str | Sequence[str], *, lat: ArrayLike | Sequence[float] | None = None,
                 climatology: ArrayLike | None = None, thresholds: Sequence[float] = (1.0, 5.0),
                 fss_scale: int | Sequence[int] = 8, data_range: float = 1.0,
                 null_value: float | None = 0.0, per_channel: bool = True) -> None:
        self.suite = suite
        self.climatology = climatology
        self.per_channel = per_channel
        self.terms = _build_terms(suite, thresholds=thresholds, fss_scale=fss_scale, data_range=data_range,
                                  null_value=null_value, lat=lat, has_climatology=climatology is not None)
        self.reset()

    @property
    def names(self) -> list[str]:
        """Metric names (before per-channel expansion)."""
        return [t.name for t in self.terms]

    def reset(self) -> None:
        self._sums: dict[str, Stats] = {}
        self.num_batches = 0
        self.num_sequences = 0

    def update(self, pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
               climatology: ArrayLike | None = None) -> None:
        """Add one batch ``(B, T, ...)``; ``climatology`` overrides the one given at construction."""
        p, t, m = _prepare(pred, target, mask)
        clim = climatology if climatology is not None else self.climatology
        c = None
        if any(term.needs_climatology for term in self.terms):
            if clim is None:
                raise ValueError("lat_weighted_acc needs a climatology (at construction or per update)")
            c = _prepare_climatology(clim, t)
        for term in self.terms:
            new = term.stats(p, t, m, c)
            old = self._sums.get(term.name)
            if old is None:
                self._sums[term.name] = new
                continue
            for key, value in new.items():
                if value.shape != old[key].shape:
                    raise ValueError(f"{term.name}: batch gives statistics of shape {tuple(value.shape)}, "
                                     f"earlier batches {tuple(old[key].shape)} (lead times or channels differ)")
                old[key] = old[key] + value.to(old[key].device)
        self.num_batches += 1
        self.num_sequences += p.shape[0]

    def compute(self) -> dict[str, list[float]]:
        """``{metric name: [value per lead time]}``; weather metrics are channel means."""
        if not self._sums:
            raise ValueError("MetricAccumulator.compute() before any update()")
        out: dict[str, list[float]] = {}
        for term in self.terms:
            values = term.finalize(self._sums[term.name]).detach().cpu()
            if values.ndim == 2:  # (T, C)
                out[term.name] = values.mean(dim=1).tolist()
                if self.per_channel and values.shape[1] > 1:
                    for ch in range(values.shape[1]):
                        out[f"{term.name}/ch{ch}"] = values[:, ch].tolist()
            else:
                out[term.name] = values.tolist()
        return out


def compute_metrics(pred: ArrayLike, target: ArrayLike, suite: str | Sequence[str], *,
                    mask: ArrayLike | None = None, lat: ArrayLike | Sequence[float] | None = None,
                    climatology: ArrayLike | None = None, thresholds: Sequence[float] = (1.0, 5.0),
                    fss_scale: int | Sequence[int] = 8, data_range: float = 1.0,
                    null_value: float | None = 0.0, per_channel: bool = True) -> dict[str, list[float]]:
    """One-batch :class:`MetricAccumulator`: ``{name: [value per lead time]}``.

    Names: ``"mse_per_frame"``, ``"ssim"``, ``"masked_mae"``, ``"csi@1.0"``, ``"fss@1.0/8px"``, ...
    """
    acc = MetricAccumulator(suite, lat=lat, climatology=climatology, thresholds=thresholds,
                            fss_scale=fss_scale, data_range=data_range, null_value=null_value,
                            per_channel=per_channel)
    acc.update(pred, target, mask=mask)
    return acc.compute()


def summarize(per_horizon: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Mean over lead times of each metric (NaN if any lead time is NaN)."""
    return {name: float(np.mean(np.asarray(values, dtype=np.float64))) for name, values in per_horizon.items()}


def horizon_table(per_horizon: Mapping[str, Sequence[float]], horizons: Sequence[int] | None = None,
                  step_minutes: float | None = None, *, include_mean: bool = False) -> list[dict]:
    """Rows ``{"horizon": h, ["minutes": h * step_minutes,] metric: value, ...}`` for a table.

    ``horizons`` are 1-based lead indices (``[3, 6, 12]`` = 15/30/60 min at 5-minute steps);
    default all. ``include_mean`` appends a row with ``horizon="mean"`` (mean over ALL lead times).
    """
    lengths = {len(v) for v in per_horizon.values()}
    if len(lengths) > 1:
        raise ValueError(f"metrics have different numbers of lead times: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    chosen = list(range(1, n + 1)) if horizons is None else [int(h) for h in horizons]
    bad = [h for h in chosen if not 1 <= h <= n]
    if bad:
        raise ValueError(f"horizons {bad} outside 1..{n} (1-based lead indices)")
    rows: list[dict] = []
    for h in chosen:
        row: dict = {"horizon": h}
        if step_minutes is not None:
            row["minutes"] = h * step_minutes
        row.update({name: float(values[h - 1]) for name, values in per_horizon.items()})
        rows.append(row)
    if include_mean:
        row = {"horizon": "mean"}
        if step_minutes is not None:
            row["minutes"] = None
        row.update(summarize(per_horizon))
        rows.append(row)
    return rows
