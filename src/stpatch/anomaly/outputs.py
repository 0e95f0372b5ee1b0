"""What a person reads from a scored clip: ``scores.csv``, ``scores.png`` (score over time, threshold,
flagged intervals shaded) and ``flagged.gif`` (flagged frames with the patch error heat map), all atomic."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from stpatch.anomaly.scoring import AnomalyResult
from stpatch.atomic import atomic_path, write_text

CSV_COLUMNS = ("frame", "time_s", "score", "psnr_db", "flagged")


def write_scores_csv(result: AnomalyResult, path: str | Path) -> Path:
    """One row per scored frame: ``frame, time_s`` (empty when the frame rate is unknown), ``score``
    (per-clip min-max normalised regularity), ``psnr_db``, ``flagged`` (0/1)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    times = result.times
    for k, frame in enumerate(result.frames):
        writer.writerow([int(frame), "" if times is None else f"{times[k]:.4f}", f"{result.score[k]:.6f}",
                         f"{result.psnr[k]:.4f}", int(result.flagged[k])])
    return write_text(path, buffer.getvalue())


def flagged_intervals(frames: np.ndarray, flagged: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive flagged frames as ``(first, last)`` frame indices."""
    out: list[tuple[int, int]] = []
    for frame, on in zip(frames.tolist(), flagged.tolist()):
        if on and out and out[-1][1] == frame - 1:
            out[-1] = (out[-1][0], frame)
        elif on:
            out.append((frame, frame))
    return out


def save_score_plot(result: AnomalyResult, path: str | Path) -> Path:
    """The regularity score over frames (or seconds), the threshold on the clip's score scale, and the
    flagged intervals shaded in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stpatch.analysis.figures import save_figure

    scale = 1.0 / result.fps if result.fps else 1.0
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(result.frames * scale, result.score, color="tab:blue", lw=1.2, label="regularity score")
    for first, last in flagged_intervals(result.frames, result.flagged):
        ax.axvspan((first - 0.5) * scale, (last + 0.5) * scale, color="tab:red", alpha=0.25, lw=0)
    if result.threshold_score is not None:
        ax.axhline(result.threshold_score, color="tab:red", ls="--", lw=1,
                   label=f"threshold (PSNR {result.threshold:.2f} dB)")
    ax.set_xlabel("time (s)" if result.fps else "frame")
    ax.set_ylabel("score (min-max per clip)")
    ax.set_title(f"{result.name}: {int(result.flagged.sum())} of {len(result.frames)} frames flagged")
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path, dpi=100)


def overlay_frame(frame: np.ndarray, patch_error: np.ndarray, patch: tuple[int, int], vmax: float,
                  alpha: float = 0.5) -> np.ndarray:
    """A frame ``(C, H, W)`` in [0, 1] with the patch error ``(nH, nW)`` as a red heat map: ``(H, W, 3)`` uint8."""
    h, w = frame.shape[1:]
    grey = np.clip(frame.mean(axis=0) if frame.shape[0] != 3 else frame.transpose(1, 2, 0), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1) if grey.ndim == 2 else grey
    heat = np.kron(patch_error, np.ones(patch))[:h, :w] / max(vmax, 1e-12)
    heat = np.clip(heat, 0, 1)[..., None] * alpha
    red = np.zeros_like(rgb)
    red[..., 0] = 1.0
    return ((rgb * (1 - heat) + red * heat) * 255).round().astype(np.uint8)


def save_overlay_gif(result: AnomalyResult, path: str | Path, max_frames: int = 60, fps: float = 5.0) -> Path | None:
    """Flagged frames (at most ``max_frames``, those kept while scoring) with the error heat map; ``None``
    when no frame was flagged."""
    import imageio.v3 as iio

    kept = sorted(result.overlays)[:max_frames]
    if not kept:
        return None
    position = {int(f): k for k, f in enumerate(result.frames)}
    vmax = float(np.max([result.patch_error[position[f]].max() for f in kept]))
    pictures = [overlay_frame(result.overlays[f], result.patch_error[position[f]], result.patch, vmax) for f in kept]
    if pictures[0].shape[0] < 96:  # small frames (digits) are hard to see: enlarge without blurring
        factor = int(np.ceil(96 / pictures[0].shape[0]))
        pictures = [np.kron(p, np.ones((factor, factor, 1), dtype=np.uint8)) for p in pictures]
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(pictures), duration=1000.0 / fps, loop=0)
    return Path(path)


def write_outputs(result: AnomalyResult, folder: str | Path, max_gif_frames: int = 60) -> dict[str, Path | None]:
    """``scores.csv``, ``scores.png`` and ``flagged.gif`` (when a frame was flagged) in ``folder``."""
    folder = Path(folder)
    return {"csv": write_scores_csv(result, folder / "scores.csv"),
            "plot": save_score_plot(result, folder / "scores.png"),
            "gif": save_overlay_gif(result, folder / "flagged.gif", max_gif_frames)}
