"""Attention as importance: how much attention each region (or sensor) receives over a set of inputs.

Built on :func:`stpatch.nn.attention_importance`, which sums each cuboid's received weights back onto
the token grid with ``index_add`` (window attention is never expanded to a joint ``L x L`` matrix),
and on :func:`stpatch.analysis.attention.deepest_maps` (the maps of the deepest token grid).
Importance is averaged over heads, blocks, queries and time tokens; every map sums to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stpatch.analysis.attention import deepest_maps
from stpatch.analysis.inputs import as_run, run_batches, run_data, spatial_coords
from stpatch.nn import attention_importance, capture_attention

__all__ = ["RegionImportance", "importance", "importance_of", "save_importance_map"]


@dataclass
class RegionImportance:
    """Attention received per region.

    Attributes:
        mean: grids ``(nY, nX)``, sensors ``(N,)``; sums to 1.
        series: ``(W, nY, nX)`` or ``(W, N)``: one map per input window, in order; each sums to 1.
        kind: ``"grid"`` or ``"sensor"``.
        coords: sensors ``(N, 2)`` latitude, longitude, when known.
    """

    mean: np.ndarray
    series: np.ndarray
    kind: str
    coords: np.ndarray | None = None


def _to_sensors(grid_imp: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``(B, G)`` per-group importance -> ``(B, N)``: a group's share split evenly among its real sensors."""
    net = next(m for m in model.modules() if hasattr(m, "groups") and hasattr(m, "node_embed"))
    groups = net.groups
    k = groups.group_size
    group_of = groups.inverse // k  # (N,)
    size = groups.mask.sum(1).clamp(min=1).to(grid_imp.dtype)  # (G,)
    return (grid_imp / size)[:, group_of]


@torch.no_grad()
def importance_of(module: nn.Module, batches, kind: str) -> np.ndarray:
    """``(W, nY, nX)`` or ``(W, N)``: attention received per region for every window of ``batches``.

    ``module`` is a ForecastModule (called on a batch dict) or a plain model (called on ``batch["x"]``).
    """
    model = getattr(module, "model", module)
    out = []
    was_training = module.training
    module.eval()
    try:
        for batch in batches:
            with capture_attention(model) as maps:
                module(batch) if model is not module else module(batch["x"])
            if not maps:
                raise ValueError(f"{type(model).__name__} has no attention layers to read importance from")
            imp = attention_importance(deepest_maps(maps)).mean(1)  # (B, nH, nW): mean over time tokens
            if kind == "sensor":
                imp = _to_sensors(imp[:, :, 0], model)
            out.append(imp / imp.flatten(1).sum(1).clamp(min=1e-12).view(-1, *[1] * (imp.ndim - 1)))
    finally:
        module.train(was_training)
    if not out:
        raise ValueError("no input windows to read attention importance from")
    return torch.cat(out).double().numpy()


def importance(run_or_checkpoint: Any, data: Any = None, split: str = "test", limit_batches: int | None = None) -> RegionImportance:
    """Attention importance of every region of a trained run over the input windows of ``split``."""
    run = as_run(run_or_checkpoint)
    dm = run_data(run, data, split)
    kind = run.meta["kind"]
    series = importance_of(run.module, run_batches(dm, split, limit_batches), kind)
    mean = series.mean(0)
    return RegionImportance(mean / mean.sum(), series, kind, spatial_coords(run, dm).get("coords"))


def save_importance_map(imp: RegionImportance, path: str | Path) -> Path:
    """PNG: the mean importance on the region grid (or coloured at the sensors), beside its time series."""
    import matplotlib.pyplot as plt

    from stpatch.analysis.feature_maps import sensor_axes, sensor_positions
    from stpatch.analysis.figures import save_figure

    fig, (ax, ax_t) = plt.subplots(1, 2, figsize=(8.4, 3.4), gridspec_kw={"width_ratios": [1, 1.3]})
    if imp.kind == "grid":
        shown = ax.imshow(imp.mean, cmap="inferno", interpolation="nearest")
        ax.set_xlabel("region x")
        ax.set_ylabel("region y")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.yaxis.get_major_locator().set_params(integer=True)
    else:
        xy = sensor_positions(imp.coords, imp.mean.shape[0])
        shown = ax.scatter(xy[:, 0], xy[:, 1], c=imp.mean, cmap="inferno", s=40, edgecolors="k", linewidths=0.3)
        sensor_axes(ax, xy, imp.coords is not None)
    fig.colorbar(shown, ax=ax, fraction=0.046, label="share of attention received")
    ax.set_title("mean attention received per region", fontsize=8)
    flat = imp.series.reshape(imp.series.shape[0], -1)
    top: list[int] = []
    for r in np.argsort(imp.mean.reshape(-1))[::-1]:
        # sensors of one group share its attention: show distinct curves only
        if len(top) < 5 and not any(np.allclose(flat[:, r], flat[:, t]) for t in top):
            top.append(int(r))
    for r in top:
        ax_t.plot(flat[:, r], label=f"region {tuple(int(i) for i in np.unravel_index(r, imp.mean.shape))}" if imp.kind == "grid" else f"sensor {r}")
    ax_t.set_xlabel("input window")
    ax_t.set_ylabel("share of attention")
    ax_t.set_title("the most attended regions over the windows", fontsize=8)
    ax_t.legend(fontsize=6)
    return save_figure(fig, path)
