"""Training losses and learning-rate schedules by name: the one table of each.

:data:`LOSSES` maps ``train.loss`` to an elementwise error and :data:`SCHEDULERS` maps
``train.scheduler`` to a schedule factory. The config (:mod:`stpatch.engine.config`) accepts
exactly these names and the Lightning module (:mod:`stpatch.engine.module`) builds from them, so
a name added here is valid and usable at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "SCHEDULERS", "budget_seconds", "get_loss", "gradient_difference", "get_scheduler", "masked_loss", "soft_csi_loss", "ssim_loss", "step_cosine_factor", "time_cosine_factor"]

ElementwiseLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``factory(module, optimizer)``: a Lightning ``lr_scheduler`` dict, or None for a constant rate.
#: ``module`` has ``train_options`` (the ``train`` section), ``trainer`` and ``_time_factor``.
SchedulerFactory = Callable[[Any, torch.optim.Optimizer], "dict | None"]

def gradient_difference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared difference of the spatial gradients of grids (Mathieu et al., ICLR 2016, with alpha = 2).

    ``pred, target (B, T, C, H, W)`` -> ``(B, T, C, H, W)``: at each pixel
    ``(dx pred - dx target)^2 + (dy pred - dy target)^2`` with forward differences (zero on the
    last row / column). It is zero for a forecast whose edges match the target's wherever it
    is, so it penalises blur (flattened edges) that a squared error alone tolerates.
    """
    if pred.ndim != 5:
        raise ValueError(f"the gradient-difference loss is for grids (B, T, C, H, W), got a tensor of shape "
                         f"{tuple(pred.shape)}; use train.loss: mse or mae for sensor networks")
    d = pred - target
    dx = F.pad(d[..., :, 1:] - d[..., :, :-1], (0, 1))
    dy = F.pad(d[..., 1:, :] - d[..., :-1, :], (0, 0, 0, 1))
    return dx**2 + dy**2


#: ``train.loss`` -> elementwise error ``(pred, target) -> err`` (same shape, no reduction).
#: ``mse_gdl``: squared error plus the gradient difference (grids only), the sharpness term of the
#: video-prediction literature.
LOSSES: dict[str, ElementwiseLoss] = {
    "mse": lambda pred, target: (pred - target) ** 2,
    "mae": lambda pred, target: (pred - target).abs(),
    "huber": lambda pred, target: F.huber_loss(pred, target, reduction="none"),
    "mse_gdl": lambda pred, target: (pred - target) ** 2 + gradient_difference(pred, target),
}


def get_loss(name: str) -> ElementwiseLoss:
    """The elementwise loss ``name``; ValueError listing :data:`LOSSES` when unknown."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}") from None


def masked_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, kind: str,
                lead_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean elementwise loss over the observed entries only.

    Args:
        pred, target: same shape, e.g. ``(B, T, C, H, W)`` or ``(B, T, N, C)``.
        mask: bool like ``target``, True where observed; ``None`` means all observed.
        kind: a name in :data:`LOSSES` (``"mse"``, ``"mae"``, ``"huber"`` or ``"mse_gdl"``).
        lead_weights: ``(T,)`` weight of each lead time (axis 1), e.g. a based model's
            :meth:`~stpatch.models.base_forecast.BasedForecaster.lead_weights`; None weighs all alike.
    """
    err = get_loss(kind)(pred, target)
    if lead_weights is not None:
        if lead_weights.shape != (err.shape[1],):
            raise ValueError(f"lead_weights must be ({err.shape[1]},) for {err.shape[1]} lead times, "
                             f"got {tuple(lead_weights.shape)}")
        err = err * lead_weights.to(err).reshape(1, -1, *([1] * (err.ndim - 2)))
    if mask is None:
        return err.mean()
    mask = mask.to(err.dtype)
    # missing targets count zero and are left out of the mean, never treated as true zeros
    return (err * mask).sum() / mask.sum().clamp_min(1.0)


def soft_csi_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, levels: torch.Tensor,
                  tau: float = 0.1) -> torch.Tensor:
    """``1 - soft CSI``, averaged over thresholds: a differentiable stand-in for the critical success index.

    The forecast exceeds a threshold with "probability" ``sigmoid((pred - level) / tau)``, the target
    does or does not; hits, misses and false alarms are summed over the batch as the CSI of an
    evaluation sums them, and ``CSI = hits / (hits + misses + false alarms)``. A squared error lets a
    model shrink a rain area it is unsure of (the regression to the mean that costs CSI); this term
    charges every lost or false pixel of the area above each threshold.

    Args:
        pred, target: ``(B, T, C, H, W)`` or ``(B, T, N, C)`` in the model's (scaled) units.
        mask: bool like ``target`` (True where observed) or None.
        levels: ``(K, C)`` thresholds in the same scaled units (the scaler's transform of the
            physical thresholds), per channel.
        tau: width of the sigmoid in scaled units (0.1 of a standard deviation).

    >>> import torch
    >>> y = torch.tensor([0.0, 2.0, 2.0, 0.0]).reshape(1, 4, 1, 1, 1)
    >>> level = torch.tensor([[1.0]])
    >>> float(soft_csi_loss(y, y, None, level, tau=0.01))  # a perfect forecast
    0.0
    >>> round(float(soft_csi_loss(y * 0.25, y, None, level, tau=0.01)), 3)  # no rain forecast: CSI 0
    1.0
    """
    axis = 2 if pred.ndim == 5 else -1  # the channel axis
    shape = [1] * pred.ndim
    shape[axis] = -1
    weight = torch.ones_like(target) if mask is None else mask.to(pred.dtype)
    target = torch.nan_to_num(target)
    losses = []
    for level in levels.to(pred):
        level = level.reshape(shape)
        p = torch.sigmoid((pred - level) / tau) * weight
        o = (target > level).to(pred.dtype) * weight
        hits = (p * o).sum()
        union = p.sum() + o.sum() - hits
        losses.append(1.0 - (hits + 1e-6) / (union + 1e-6))
    return torch.stack(losses).mean()


def _gaussian_window(sigma: float = 1.5, size: int = 11) -> torch.Tensor:
    """The normalised 1-D Gaussian ``(size,)`` of SSIM's window."""
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, data_range: float,
              crop: int = 0) -> torch.Tensor:
    """``1 - SSIM``, the mean structural similarity of every forecast frame with its target.

    The structure term of the video-prediction literature (Wang et al., IEEE TIP 2004): a squared
    error is minimised by the average of the futures a model cannot tell apart, a blur, which SSIM
    charges for lost local contrast and structure. SSIM's Gaussian window (sigma 1.5, 11 taps)
    applied as two 1-D passes over the valid region (no padding): 22 multiply-adds per pixel and
    moment instead of a 2-D window's 121. Up to the border pixels it is the ``ssim`` metric.

    On a CPU the term is memory-bound: over whole frames it costs about as much as the model's own
    step. ``crop`` > 0 computes it on one random ``crop x crop`` square of the frames (the same square
    for the whole batch, a new one per call, from torch's seeded generator): an estimate of the
    whole-frame value whose mean over steps is (up to the frame borders) the same, at a fraction of
    the cost. Training uses it; fitting and scoring use whole frames.

    Args:
        pred, target: ``(B, T, C, H, W)`` in the model's (scaled) units.
        mask: bool like ``target`` (True where observed) or None; masked pixels are 0 in both.
        data_range: the value range of the data in the same scaled units (SSIM's stabilising
            constants are fractions of it).
        crop: side of the random square (0, or frames no larger than it: whole frames).

    >>> import torch
    >>> y = torch.rand(1, 2, 1, 16, 16)
    >>> float(ssim_loss(y, y, None, 1.0)) < 1e-5  # a perfect forecast
    True
    >>> float(ssim_loss(torch.full_like(y, 0.5), y, None, 1.0)) > 0.5  # a flat grey guess loses the structure
    True
    """
    if pred.ndim != 5:
        raise ValueError(f"the SSIM loss is for grids (B, T, C, H, W), got a tensor of shape {tuple(pred.shape)}; "
                         "set train.ssim_weight: 0 for sensor networks")
    window = _gaussian_window().to(pred)
    size = window.numel()
    if min(pred.shape[-2:]) < size:
        raise ValueError(f"the SSIM loss needs frames of at least {size}x{size} pixels, got {tuple(pred.shape[-2:])}; "
                         "set train.ssim_weight: 0")
    target = torch.nan_to_num(target)
    if mask is not None:
        pred, target = pred * mask.to(pred.dtype), target * mask.to(pred.dtype)
    height, width = pred.shape[-2:]
    if crop >= size and (height > crop or width > crop):
        top = int(torch.randint(0, max(height - crop, 0) + 1, ()))
        left = int(torch.randint(0, max(width - crop, 0) + 1, ()))
        pred, target = pred[..., top:top + crop, left:left + crop], target[..., top:top + crop, left:left + crop]
    p, t = pred.flatten(0, 2).unsqueeze(1), target.flatten(0, 2).unsqueeze(1)  # (B*T*C, 1, H, W)
    maps = torch.cat([p, t, p * p, t * t, p * t], dim=1)  # the five local moments, filtered at once
    maps = F.conv2d(maps, window.reshape(1, 1, 1, size).expand(5, 1, 1, size), groups=5)
    mu_p, mu_t, pp, tt, pt = F.conv2d(maps, window.reshape(1, 1, size, 1).expand(5, 1, size, 1), groups=5).unbind(1)
    var_p, var_t, cov = pp - mu_p**2, tt - mu_t**2, pt - mu_p * mu_t
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return 1.0 - ssim.mean()


def budget_seconds(max_time: str | None) -> float | None:
    """``train.max_time`` (HH:MM:SS, DD:HH:MM:SS or seconds) in seconds; None without a budget."""
    if not max_time:
        return None
    from stpatch.engine.config import parse_max_time

    days, hours, minutes, seconds = (int(p) for p in parse_max_time(max_time).split(":"))
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def time_cosine_factor(step: int, elapsed: float, budget: float, total_steps: float | None = None) -> float:
    """Learning-rate factor under a wall-clock budget: 50-step warmup, cosine to 2 % over the run.

    The run's progress is the larger of the time spent (``elapsed / budget``) and, when the run also
    has a step plan (``total_steps``, from ``max_epochs`` or ``max_steps``), the steps taken: whichever
    limit ends the run first also ends the anneal. Without the step term a run stopped by its epochs
    long before the clock ran out would stop at (almost) full learning rate.

    >>> [round(time_cosine_factor(s, t, 100.0), 3) for s, t in ((0, 0.0), (100, 50.0), (100, 100.0))]
    [0.02, 0.51, 0.02]
    >>> round(time_cosine_factor(100, 10.0, 100.0, total_steps=200), 3)   # half the steps, a tenth of the time
    0.51
    """
    warmup = min(1.0, (step + 1) / 50)
    progress = min(elapsed / budget, 1.0)
    if total_steps and math.isfinite(total_steps):
        progress = max(progress, min(step / total_steps, 1.0))
    return warmup * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def step_cosine_factor(step: int, total: int, warmup: float = 0.05) -> float:
    """Learning-rate factor over ``total`` planned steps: linear warmup from 4 % over the first
    ``warmup`` share, then a cosine down to 0.01 %; past ``total`` it stays there.

    >>> [round(step_cosine_factor(s, 100), 4) for s in (0, 5, 50, 100, 200)]
    [0.04, 1.0, 0.5413, 0.0001, 0.0001]
    """
    total = max(int(total), 1)
    ramp = max(int(round(warmup * total)), 1)
    if step < ramp:
        return 0.04 + 0.96 * step / ramp
    progress = min((step - ramp) / max(total - ramp, 1), 1.0)
    return max(0.5 * (1 + math.cos(math.pi * progress)), 1e-4)


def _cosine(module: Any, optimizer: torch.optim.Optimizer) -> dict:
    opts = module.train_options
    budget = budget_seconds(opts.get("max_time"))
    if budget:
        # under a wall-clock budget the number of steps is unknown: anneal over elapsed time instead
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: module._time_factor(step, budget))
        return {"scheduler": schedule, "interval": "step"}
    # step-wise cosine over the planned steps. The plan is read at every step, not frozen into the
    # schedule's saved state, so `train --resume` with a larger --max-steps continues (a saved
    # OneCycleLR would stop at its old total)
    def factor(step: int) -> float:
        total = module.trainer.estimated_stepping_batches
        return step_cosine_factor(step, int(total) if total and total != float("inf") else 10_000)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": schedule, "interval": "step"}


def _constant(module: Any, optimizer: torch.optim.Optimizer) -> None:
    return None


#: ``train.scheduler`` -> schedule factory (see :data:`SchedulerFactory`).
SCHEDULERS: dict[str, SchedulerFactory] = {"cosine": _cosine, "none": _constant}


def get_scheduler(name: str) -> SchedulerFactory:
    """The schedule factory ``name``; ValueError listing :data:`SCHEDULERS` when unknown."""
    try:
        return SCHEDULERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}") from None
