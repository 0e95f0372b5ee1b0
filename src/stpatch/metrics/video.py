"""Video / grid metrics: per-frame and per-pixel errors, RMSE, PSNR, SSIM (OpenSTL conventions).

``mse_per_frame``, ``mae_per_frame``: error summed over ``C, H, W`` of a frame, averaged over
sequences (OpenSTL / Moving MNIST). ``mse_per_pixel``, ``mae_per_pixel``: mean over every entry
of a lead time. ``rmse``: sqrt of the per-pixel MSE; ``rmse_per_frame``: sqrt of the per-frame
MSE (OpenSTL's RMSE). ``psnr``: ``20 log10(data_range) - 10 log10(mse of the frame)`` per frame,
averaged over frames (identical frames give +inf, as OpenSTL); no uint8 quantisation. ``ssim``:
torchmetrics' Gaussian SSIM (sigma 1.5, 11 px) per frame with ``C`` as image channels, averaged
over frames; OpenSTL uses scikit-image's (7 px uniform window), so values differ slightly.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from .core import (
    ArrayLike,
    Reduce,
    Stats,
    check_range,
    fin_mean,
    fin_sqrt_mean,
    frame_sum,
    other_dims,
    prepare,
    reduce_horizons,
    require_grid,
    zero_where_invalid,
)
from .registry import register_metric

__all__ = ["mae_per_frame", "mae_per_pixel", "mse_per_frame", "mse_per_pixel", "psnr", "rmse",
           "rmse_per_frame", "ssim"]


def _stats_per_frame(p, t, m, kind: str) -> Stats:
    d = p - t
    err = zero_where_invalid(d * d if kind == "sq" else d.abs(), m)
    frames = frame_sum(err)  # (B, T)
    if m is None:
        n = torch.full((p.shape[1],), p.shape[0], dtype=p.dtype, device=p.device)
    else:  # a sequence counts at a lead time when its frame has any valid entry
        n = (m.flatten(2).any(-1) if m.ndim > 2 else m).sum(0).to(p.dtype)
    return {"sum": frames.sum(0), "n": n}


def _stats_per_pixel(p, t, m, kind: str) -> Stats:
    d = p - t
    err = zero_where_invalid(d * d if kind == "sq" else d.abs(), m)
    if m is None:
        n = torch.full((p.shape[1],), p[:, 0].numel(), dtype=p.dtype, device=p.device)
    else:
        n = m.sum(dim=other_dims(m)).to(p.dtype)
    return {"sum": err.sum(dim=other_dims(err)), "n": n}


def _stats_psnr(p, t, m, data_range: float) -> Stats:
    d = p - t
    err = frame_sum(zero_where_invalid(d * d, m))
    count = frame_sum(m.to(p.dtype)) if m is not None else torch.full_like(err, p[0, 0].numel())
    valid = count > 0  # frames with no valid entry are skipped
    mse = err / count.clamp_min(1)
    value = 20.0 * math.log10(data_range) - 10.0 * torch.log10(mse)  # mse == 0 -> +inf
    return {"sum": zero_where_invalid(value, valid).sum(0), "n": valid.sum(0).to(p.dtype)}


def _stats_ssim(p, t, m, data_range: float, gaussian_kernel: bool, sigma: float, kernel_size: int) -> Stats:
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    require_grid(p, "ssim")
    pad = int(3.5 * sigma + 0.5) if gaussian_kernel else (kernel_size - 1) // 2
    if min(p.shape[-2:]) <= pad:  # torchmetrics reflect-pads by the window radius
        raise ValueError(f"ssim needs H and W > {pad} for this window, got shape {tuple(p.shape)}")
    if m is not None:  # masked entries become 0 in both, so their values cannot matter
        p, t = zero_where_invalid(p, m), zero_where_invalid(t, m)
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
        sums.append(zero_where_invalid(values.to(work), valid).sum())
        counts.append(valid.sum().to(work))
    return {"sum": torch.stack(sums), "n": torch.stack(counts)}


def mse_per_frame(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
                  reduce: Reduce = "horizon") -> torch.Tensor:
    """Squared error summed over a frame, mean over sequences (OpenSTL / Moving MNIST MSE).

    ``(B, T, ...) -> (T,)``: ``mean_b sum_{c,h,w} (pred - target)^2``. With a mask only valid
    entries are summed and a sequence counts at a lead time if its frame has a valid entry.
    Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_mean(_stats_per_frame(p, t, m, "sq")), reduce)


def mae_per_frame(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
                  reduce: Reduce = "horizon") -> torch.Tensor:
    """Absolute error summed over a frame, mean over sequences (OpenSTL MAE). ``(B, T, ...) -> (T,)``.

    Masks as :func:`mse_per_frame`. Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_mean(_stats_per_frame(p, t, m, "abs")), reduce)


def mse_per_pixel(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
                  reduce: Reduce = "horizon") -> torch.Tensor:
    """Mean squared error over every (valid) entry of a lead time. ``(B, T, ...) -> (T,)``.

    Equals ``mse_per_frame / (C * H * W)`` without a mask. Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_mean(_stats_per_pixel(p, t, m, "sq")), reduce)


def mae_per_pixel(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
                  reduce: Reduce = "horizon") -> torch.Tensor:
    """Mean absolute error over every (valid) entry of a lead time. ``(B, T, ...) -> (T,)``.

    Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_mean(_stats_per_pixel(p, t, m, "abs")), reduce)


def rmse(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
         reduce: Reduce = "horizon") -> torch.Tensor:
    """Per-pixel RMSE: ``sqrt(mse_per_pixel)`` per lead time. ``(B, T, ...) -> (T,)``.

    OpenSTL's "RMSE" is instead the sqrt of the per-frame (summed) MSE: :func:`rmse_per_frame`.
    Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_sqrt_mean(_stats_per_pixel(p, t, m, "sq")), reduce)


def rmse_per_frame(pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
                   reduce: Reduce = "horizon") -> torch.Tensor:
    """OpenSTL RMSE: ``sqrt(mse_per_frame)`` per lead time. ``(B, T, ...) -> (T,)``.

    Lower is better (0 = perfect).
    """
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_sqrt_mean(_stats_per_frame(p, t, m, "sq")), reduce)


def psnr(pred: ArrayLike, target: ArrayLike, *, data_range: float = 1.0, mask: ArrayLike | None = None,
         reduce: Reduce = "horizon") -> torch.Tensor:
    """PSNR per frame, averaged over sequences (OpenSTL). ``(B, T, ...) -> (T,)``.

    For data in ``[0, data_range]``: ``20 log10(data_range) - 10 log10(mse)`` with ``mse`` the
    per-pixel MSE of one frame (valid entries only; frames without one are skipped); a perfect
    frame gives +inf. The mean of per-frame PSNRs is not the PSNR of the mean MSE.
    Higher is better (in dB).
    """
    check_range(data_range)
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_mean(_stats_psnr(p, t, m, data_range)), reduce)


def ssim(pred: ArrayLike, target: ArrayLike, *, data_range: float = 1.0, mask: ArrayLike | None = None,
         reduce: Reduce = "horizon", gaussian_kernel: bool = True, sigma: float = 1.5,
         kernel_size: int = 11) -> torch.Tensor:
    """SSIM per frame (torchmetrics, ``C`` as image channels), mean over sequences. ``(B, T, C, H, W) -> (T,)``.

    Each lead time is scored as a batch of ``B`` images ``(C, H, W)`` with torchmetrics'
    ``structural_similarity_index_measure`` (``reduction="none"``), filtered in float32; needs
    ``H, W >= 6`` for the default window. With a mask, masked entries are set to 0 in both fields before filtering and
    the SSIM map is averaged over the valid pixels of each frame. Higher is better (1 = identical).
    """
    check_range(data_range)
    p, t, m = prepare(pred, target, mask)
    return reduce_horizons(fin_mean(_stats_ssim(p, t, m, data_range, gaussian_kernel, sigma, kernel_size)), reduce)


for _name, _stats, _fin, _fn in (
    ("mse_per_frame", partial(_stats_per_frame, kind="sq"), fin_mean, mse_per_frame),
    ("mae_per_frame", partial(_stats_per_frame, kind="abs"), fin_mean, mae_per_frame),
    ("mse_per_pixel", partial(_stats_per_pixel, kind="sq"), fin_mean, mse_per_pixel),
    ("mae_per_pixel", partial(_stats_per_pixel, kind="abs"), fin_mean, mae_per_pixel),
    ("rmse", partial(_stats_per_pixel, kind="sq"), fin_sqrt_mean, rmse),
    ("rmse_per_frame", partial(_stats_per_frame, kind="sq"), fin_sqrt_mean, rmse_per_frame),
):
    register_metric(_name, _stats, finalize=_fin, higher_is_better=False, doc=_fn.__doc__)
del _name, _stats, _fin, _fn
register_metric("psnr", _stats_psnr, higher_is_better=True, inputs=("data_range",), doc=psnr.__doc__)
register_metric("ssim", partial(_stats_ssim, gaussian_kernel=True, sigma=1.5, kernel_size=11),
                higher_is_better=True, inputs=("data_range",), doc=ssim.__doc__)
