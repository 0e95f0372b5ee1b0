"""The picture of a benchmark suite: its headline metric against lead time, one line per model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def plot_lead_times(
    title: str,
    metric: str,
    per_model: dict[str, Sequence[float]],
    path: str | Path,
    step_minutes: float | None = None,
    higher_is_better: bool = False,
) -> Path:
    """Write a PNG of ``metric`` against lead time for every model; returns the path.

    Args:
        per_model: ``{model name: values per lead time (+1, +2, ...)}``.
        step_minutes: minutes per step, to label the axis in minutes (else in steps).
        higher_is_better: said in the axis label, so the reader knows which way is good.
    """
    from stpatch.analysis.figures import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, values in per_model.items():
        leads = [(i + 1) * (step_minutes or 1) for i in range(len(values))]
        style = "--" if name in ("persistence", "climatology", "linear", "extrapolation") else "-"
        ax.plot(leads, list(values), style, marker="o", markersize=3, label=name)
    ax.set_xlabel(f"lead time ({'min' if step_minutes else 'steps'})")
    ax.set_ylabel(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
