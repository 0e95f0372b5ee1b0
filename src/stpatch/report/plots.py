"""The report's plots, drawn from a run's own files: error against lead time (``eval.json``), loss curves (``metrics.csv``)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=90)
    finally:
        plt.close(fig)
    return buf.getvalue()


def lead_time_png(result: dict) -> bytes | None:
    """One panel per metric: its value at every lead time, a line per forecaster (``eval.json``'s ``per_horizon``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = result.get("per_horizon") or {}
    metrics = list(dict.fromkeys(m for values in per.values() for m in values))
    if not metrics:
        return None
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        leads = 1
        for name, values in per.items():
            v = np.asarray(values.get(metric, []), dtype=np.float64).reshape(-1)
            if v.size:
                ax.plot(np.arange(1, v.size + 1), v, marker="o", ms=3, label=name,
                        lw=2.2 if name == result.get("model") else 1.2)
                leads = max(leads, v.size)
        ax.set_xlim(0.5, leads + 0.5)  # whole lead times; one lead (weekly counts) is not a 0.96..1.04 axis
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("lead time (steps)", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    return _png(fig)


def loss_curves_png(metrics_csv: str | Path) -> bytes | None:
    """Training and validation loss against epoch from Lightning's ``metrics.csv`` (None when it has no losses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    path = Path(metrics_csv)
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    columns = [c for c in ("train_loss_epoch", "train_loss", "val_loss") if c in frame.columns and frame[c].notna().any()]
    if not columns or "epoch" not in frame.columns:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    epochs = 1
    for c in columns:
        rows = frame[["epoch", c]].dropna().groupby("epoch")[c].last()
        ax.plot(rows.index + 1, rows.values, marker="o", ms=3, label=c)
        epochs = max(epochs, int(rows.index.max()) + 1 if len(rows) else 1)
    ax.set_xlim(0.5, epochs + 0.5)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("loss (scaled units)")
    ax.set_yscale("log" if (frame[columns].min().min() > 0) else "linear")
    ax.legend(fontsize=7)
    ax.set_title("training and validation loss", fontsize=9)
    return _png(fig)
