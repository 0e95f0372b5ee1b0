"""Attention as important regions: which spacetime patches a forecaster's attention weighs most."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stpatch.analysis.figures import _frames_2d, save_figure
from stpatch.nn import attention_importance, capture_attention


@torch.no_grad()
def attention_regions(model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """Mean attention each token receives in one forward pass of ``model`` on ``x``.

    Args:
        model: a forecaster with ``SpacetimeAttention`` layers (e.g. ``stpnet``).
        x: its input, e.g. ``(B, T_in, C, H, W)`` (scaled as in training).

    Returns:
        ``(B, nT, nH, nW)`` importance on the token grid of the deepest attention layers (each map
        sums to 1 over the grid), averaged over their layers, heads and queries; ``None`` when the
        model has no attention.

    The model is switched to eval mode for the call and back afterwards: do not run it for
    training in another thread at the same time.
    """
    was_training = model.training
    model.eval()
    try:
        # scoped to this model and this thread: other threads' calls (of any model) never land here
        with capture_attention(model) as maps:
            model(x)
    finally:
        model.train(was_training)
    if not maps:
        return None
    return attention_importance(deepest_maps(maps))


def deepest_maps(maps: list) -> list:
    """The captured maps on the token grid of the last attention pass (the deepest layers)."""
    grid = maps[-1].grid
    return [m for m in maps if m.grid == grid]


def upsample_regions(importance: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, nT, nH, nW) -> (B, nT, H, W)``: each patch's importance spread over its pixels (bilinear)."""
    return F.interpolate(importance.float(), size=size, mode="bilinear", align_corners=False)


def save_attention_figure(frames: np.ndarray, importance: np.ndarray | torch.Tensor, path: str | Path) -> Path:
    """PNG: for each time slice of the token grid, its last input frame with the attention overlaid.

    Args:
        frames: ``(T_in, C, H, W)`` input frames (channel 0 is drawn).
        importance: ``(nT, nH, nW)`` from :func:`attention_regions` (one sample).
    """
    import matplotlib.pyplot as plt

    frames2d = _frames_2d(frames)
    imp = torch.as_tensor(np.asarray(importance), dtype=torch.float32)
    if imp.ndim != 3:
        raise ValueError(f"expected importance (nT, nH, nW) for one sample, got shape {tuple(imp.shape)}")
    t_in, h, w = frames2d.shape
    n_t = imp.shape[0]
    heat = upsample_regions(imp[None], (h, w))[0].numpy()
    fig, axes = plt.subplots(1, n_t, figsize=(2.2 * n_t, 2.4), squeeze=False)
    for i in range(n_t):
        frame = min(t_in - 1, int(round((i + 1) * t_in / n_t)) - 1)
        ax = axes[0, i]
        ax.imshow(frames2d[frame], cmap="gray")
        ax.imshow(heat[i], cmap="inferno", alpha=0.55, vmin=0, vmax=float(heat.max()) or 1.0)
        ax.set_title(f"time slice {i + 1} (to t-{t_in - frame})", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("attention received per spacetime patch (brighter = weighed more)", fontsize=8)
    return save_figure(fig, path)
