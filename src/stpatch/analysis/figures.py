"""Pictures of forecasts: a PNG strip of inputs / truth / forecast, an animated GIF, sensor traces.

All writers take NumPy arrays in physical units, write to a temporary file and rename it into
place, and return the path written.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import imageio.v3 as iio  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stpatch.atomic import atomic_path  # noqa: E402


def _frames_2d(frames: np.ndarray) -> np.ndarray:
    """``(T, C, H, W) -> (T, H, W)``: first channel (grids with several channels show channel 0)."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4:
        raise ValueError(f"expected frames (T, C, H, W), got shape {frames.shape}")
    return frames[:, 0]


def save_forecast_strip(
    inputs: np.ndarray,
    truth: np.ndarray | None,
    forecast: np.ndarray,
    path: str | Path,
    max_frames: int = 10,
    cmap: str = "viridis",
    title: str | None = None,
) -> Path:
    """PNG with one row each for inputs, truth (when given), forecast and absolute error.

    Args:
        inputs: ``(T_in, C, H, W)``; truth and forecast: ``(T_out, C, H, W)``; channel 0 is drawn.
        max_frames: at most this many columns (frames evenly chosen).
    """
    rows = [("input", _frames_2d(inputs))]
    if truth is not None:
        rows.append(("truth", _frames_2d(truth)))
    rows.append(("forecast", _frames_2d(forecast)))
    if truth is not None:
        rows.append(("|error|", np.abs(rows[-1][1] - rows[-2][1])))
    values = np.concatenate([frames.ravel() for label, frames in rows if label != "|error|"])
    vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
    cols = min(max_frames, max(len(r[1]) for r in rows))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.3 * cols, 1.4 * len(rows)), squeeze=False)
    for r, (label, frames) in enumerate(rows):
        picks = np.linspace(0, len(frames) - 1, min(cols, len(frames))).round().astype(int)
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(picks):
                is_err = label == "|error|"
                ax.imshow(frames[picks[c]], cmap="magma" if is_err else cmap,
                          vmin=0 if is_err else vmin, vmax=(vmax - vmin) if is_err else vmax)
                ax.set_title(f"t{'-' if r == 0 else '+'}{(len(frames) - picks[c]) if r == 0 else picks[c] + 1}", fontsize=7)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def save_figure(fig, path: str | Path, dpi: int = 90) -> Path:
    """Lay out, write (to a temporary file, then rename) and close a matplotlib figure."""
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)


def _to_uint8(frames: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    scaled = (np.clip(frames, vmin, vmax) - vmin) / max(vmax - vmin, 1e-12)
    rgb = plt.get_cmap("viridis")(scaled)[..., :3]
    return (rgb * 255).astype(np.uint8)


def save_forecast_gif(truth: np.ndarray | None, forecast: np.ndarray, path: str | Path, fps: int = 4, scale: int = 3) -> Path:
    """Animated GIF of truth (left) beside forecast (right), one frame per lead time.

    Args:
        truth, forecast: ``(T_out, C, H, W)``; truth may be ``None`` (forecast alone).
        scale: integer upscaling of each pixel so small grids are visible.
    """
    fc = _frames_2d(forecast)
    panels = [fc] if truth is None else [_frames_2d(truth), fc]
    vmin = float(min(np.nanmin(p) for p in panels))
    vmax = float(max(np.nanmax(p) for p in panels))
    gap = np.full((fc.shape[0], fc.shape[1], 2), vmax, dtype=np.float32)
    joined = np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=2)
    frames = _to_uint8(joined, vmin, vmax).repeat(scale, axis=1).repeat(scale, axis=2)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, frames, extension=".gif", duration=int(1000 / fps), loop=0)
    return Path(path)


def save_sensor_plot(
    history: np.ndarray, truth: np.ndarray | None, forecast: np.ndarray, path: str | Path, sensors: list[int] | None = None
) -> Path:
    """PNG of a few sensors' history, truth and forecast over time.

    Args:
        history: ``(T_in, N, C)``; truth, forecast: ``(T_out, N, C)``; channel 0 is drawn.
        sensors: which sensors (default: four spread over the index range).
    """
    n = history.shape[1]
    sensors = sensors or sorted({int(i) for i in np.linspace(0, n - 1, min(4, n))})
    t_in, t_out = history.shape[0], forecast.shape[0]
    fig, axes = plt.subplots(len(sensors), 1, figsize=(7, 1.8 * len(sensors)), squeeze=False)
    # markers: a forecast of one or two steps is a line too short to see without them
    dots = {"marker": "o", "ms": 3} if t_out <= 24 else {}
    for ax, s in zip(axes[:, 0], sensors):
        ax.plot(range(t_in), history[:, s, 0], color="0.3", label="history")
        if truth is not None:
            ax.plot(range(t_in, t_in + t_out), truth[:, s, 0], color="0.3", ls="--", label="truth", **dots)
        ax.plot(range(t_in, t_in + t_out), forecast[:, s, 0], color="C1", label="forecast", **dots)
        ax.set_ylabel(f"sensor {s}", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("step")
    return save_figure(fig, path)
