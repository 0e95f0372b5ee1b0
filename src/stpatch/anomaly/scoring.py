"""Regularity scores from next-frame forecast error (Liu et al., "Future Frame Prediction for Anomaly
Detection", CVPR 2018), streamed over a clip in chunks.

For every frame ``t >= t_in`` the forecaster sees frames ``t - t_in .. t - 1`` and its first lead time is
compared with frame ``t``:

* ``psnr[t] = 10 log10(peak^2 / mse[t])``, the mean over channels and pixels (un-normalised: comparable
  across clips, so the alarm threshold is calibrated and applied on it);
* ``score[t] = (psnr[t] - min psnr) / (max psnr - min psnr)`` over the clip: the paper's regularity score,
  min-max normalised **per clip** (1 = the most regular frame of this clip, 0 = the least). It ranks
  frames within a clip; it is not comparable across clips, so nothing is thresholded on it;
* ``patch_error[t]`` ``(nH, nW)``: the mean squared error in each spatial patch, the "where".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stpatch.anomaly.frames import FrameSource, open_frames

Forecaster = Callable[[np.ndarray], np.ndarray]  # (B, t_in, C, H, W) -> next frame (B, C, H, W)


@dataclass
class AnomalyResult:
    """Scores of one clip; arrays have one entry per forecast frame (frames ``t_in ..`` of the clip)."""

    frames: np.ndarray  # (F,) int: frame index in the clip
    psnr: np.ndarray  # (F,) dB, un-normalised
    score: np.ndarray  # (F,) regularity in [0, 1], min-max normalised over this clip
    patch_error: np.ndarray  # (F, nH, nW) mean squared error per patch
    patch: tuple[int, int]  # (ph, pw) pixels per patch
    threshold: float | None  # PSNR (dB) below which a frame is flagged
    fps: float | None = None
    name: str = "clip"
    overlays: dict = field(default_factory=dict)  # frame index -> frame (C, H, W) of a flagged frame (capped)

    @property
    def flagged(self) -> np.ndarray:
        """``(F,)`` bool: PSNR below the calibrated threshold (none without a threshold)."""
        if self.threshold is None:
            return np.zeros(len(self.psnr), dtype=bool)
        return self.psnr < self.threshold

    @property
    def times(self) -> np.ndarray | None:
        """``(F,)`` seconds from the clip's start when its frame rate is known."""
        return None if not self.fps else self.frames / self.fps

    @property
    def threshold_score(self) -> float | None:
        """The PSNR threshold on this clip's normalised score scale (for plots)."""
        if self.threshold is None or not len(self.psnr):
            return None
        low, high = float(self.psnr.min()), float(self.psnr.max())
        return 1.0 if high == low else (self.threshold - low) / (high - low)


def psnr(mse: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """PSNR in dB of mean squared errors (floored at 1e-10 so a perfect forecast stays finite)."""
    return 10.0 * np.log10(peak ** 2 / np.maximum(np.asarray(mse, dtype=np.float64), 1e-10))


def minmax(values: np.ndarray) -> np.ndarray:
    """Min-max normalised to [0, 1]; a constant series is all ones (every frame equally regular)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return values
    low, high = values.min(), values.max()
    return np.ones_like(values) if high == low else (values - low) / (high - low)


def patch_errors(pred: np.ndarray, target: np.ndarray, patch: tuple[int, int], power: int = 2) -> np.ndarray:
    """Mean ``|pred - target| ** power`` per spatial patch: ``(B, C, H, W)`` x2 -> ``(B, nH, nW)``.

    Edge patches that the grid does not fill are averaged over the pixels they hold.
    """
    err = np.abs(pred.astype(np.float64) - target) ** power
    err = err.mean(axis=1)  # over channels
    b, h, w = err.shape
    ph, pw = patch
    nh, nw = -(-h // ph), -(-w // pw)
    padded = np.zeros((b, nh * ph, nw * pw))
    count = np.zeros((nh * ph, nw * pw))
    padded[:, :h, :w], count[:h, :w] = err, 1.0
    sums = padded.reshape(b, nh, ph, nw, pw).sum(axis=(2, 4))
    return sums / count.reshape(nh, ph, nw, pw).sum(axis=(1, 3))


def patch_box(index: int, shape: tuple[int, int], patch: tuple[int, int], grid_w: int) -> tuple[int, int, int, int]:
    """Pixel box ``(y0, x0, y1, x1)`` of flat patch ``index`` on a grid ``grid_w`` patches wide."""
    i, j = divmod(int(index), grid_w)
    return i * patch[0], j * patch[1], min((i + 1) * patch[0], shape[0]), min((j + 1) * patch[1], shape[1])


def score_frames(forecaster: Forecaster, t_in: int, source: FrameSource, channels: int,
                 patch: tuple[int, int], peak: float = 1.0, threshold: float | None = None,
                 chunk: int = 256, batch_size: int = 16, progress: bool = True, check: Callable | None = None,
                 keep_overlays: int = 0) -> AnomalyResult:
    """Score every frame of ``source`` that has ``t_in`` frames before it, ``chunk`` frames at a time.

    Memory holds one chunk plus the ``t_in`` frames before it, and ``batch_size`` input windows. The result
    does not depend on ``chunk`` (each frame's window is the same). ``check(frames (T, C, H, W))`` may raise
    on bad input (the data guard); ``keep_overlays`` keeps up to that many flagged frames for the GIF.
    """
    tail: np.ndarray | None = None
    offset = 0  # clip index of the first frame in `tail`
    frames, mses, maps, overlays = [], [], [], {}
    bar = _bar(progress, source)
    for new in source.chunks(chunk, channels):
        if check is not None:
            check(new)
        block = new if tail is None else np.concatenate([tail, new])
        if tail is not None and block.shape[1:] != tail.shape[1:]:
            raise ValueError(f"{source.name}: frame size changed within the clip")
        for start in range(t_in, len(block), batch_size):
            stop = min(start + batch_size, len(block))
            x = np.stack([block[i - t_in:i] for i in range(start, stop)])  # (B, t_in, C, H, W)
            target = block[start:stop]
            pred = np.asarray(forecaster(x), dtype=np.float32)
            err = patch_errors(pred, target, patch)
            mse = ((pred.astype(np.float64) - target) ** 2).mean(axis=(1, 2, 3))
            frames.extend(range(offset + start, offset + stop))
            mses.append(mse)
            maps.append(err)
            if threshold is not None and keep_overlays:
                for k in np.flatnonzero(psnr(mse, peak) < threshold):
                    if len(overlays) < keep_overlays:
                        overlays[offset + start + int(k)] = target[k].copy()
        keep = min(t_in, len(block))
        offset += len(block) - keep
        tail = block[len(block) - keep:].copy()  # only the last t_in frames survive the chunk
        if bar is not None:
            bar.update(len(new))
    if bar is not None:
        bar.close()
    if not frames:
        raise ValueError(f"{source.name}: the clip has {offset + (0 if tail is None else len(tail))} frame(s); the model "
                         f"needs {t_in} input frames before the first frame it can score, so at least {t_in + 1}")
    p = psnr(np.concatenate(mses), peak)
    return AnomalyResult(np.asarray(frames), p, minmax(p), np.concatenate(maps), tuple(patch), threshold,
                         source.fps, source.name, overlays)


def _bar(progress: bool, source: FrameSource) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=source.length, desc=f"scoring {source.name}", unit="frame")


def score(checkpoint: Any, video_or_data: Any, patch: int | tuple[int, int] | None = None,
          threshold: float | None | str = "calibrated", quantile: float = 0.01, chunk: int = 256,
          batch_size: int = 16, progress: bool = True, strict: bool = False, keep_overlays: int = 60,
          normal: Any = None) -> AnomalyResult:
    """Regularity scores of a clip with a trained run's next-frame forecast.

    Args:
        checkpoint: a run directory or ``.ckpt`` of a grid run, or a loaded engine
            (:func:`stpatch.deploy.engines.open_engine`).
        video_or_data: a video file (``.mp4``, ``.gif`` ...), a folder of frames, a ``.npy`` array
            ``(T, C, H, W)`` / ``(T, H, W)``, a ``SpatioTemporalData`` or an array, in the run's units
            (videos: [0, 1]). Colour is averaged to grey for a one-channel run; a clip of another frame
            size than the run's is refused (crop or resize it first), as is one of fewer than ``t_in + 1`` frames.
        patch: pixels per patch of the error maps; default: the model's spatial patch size (else 8).
        threshold: a PSNR in dB; ``"calibrated"`` (default) reads or computes the run's threshold
            (:func:`stpatch.anomaly.threshold.calibrated_threshold`, the ``quantile`` of the PSNR on the
            run's validation split, stored in ``RUN/anomaly_threshold.json``); ``None``: flag nothing.
        chunk: frames read and scored at a time (bounded memory for long clips).
        normal: normal footage to calibrate on instead of the run's validation split (a clip as above).
        keep_overlays: flagged frames kept in memory for the overlay GIF.

    Returns:
        an :class:`AnomalyResult`: ``frames``, ``psnr``, ``score`` (per-clip min-max normalised PSNR),
        ``patch_error`` ``(F, nH, nW)``, ``threshold``, ``flagged``.
    """
    from stpatch.anomaly.threshold import calibrated_threshold
    from stpatch.deploy.engines import open_engine

    engine = checkpoint if hasattr(checkpoint, "forecast") else open_engine(checkpoint, "torch")
    meta = engine.meta
    if meta["kind"] != "grid":
        raise ValueError("anomaly scoring needs a run trained on grids (video); this one forecasts sensors")
    if threshold == "calibrated":
        threshold = calibrated_threshold(engine, quantile=quantile, normal=normal, progress=progress)
    source = open_frames(video_or_data)
    return score_frames(next_frame_forecaster(engine), meta["t_in"], source, meta["in_channels"],
                        patch_size(patch, engine), peak_value(engine.profile), threshold, chunk, batch_size,
                        progress, guard_check(engine, source.name, strict), keep_overlays)


def next_frame_forecaster(engine: Any) -> Forecaster:
    """The engine's first lead time: ``(B, t_in, C, H, W)`` -> ``(B, C, H, W)``."""
    shape = tuple(engine.meta["spatial_shape"])
    return lambda x: engine.forecast(x, None, spatial_shape=shape)[:, 0]


def persistence_forecaster(x: np.ndarray) -> np.ndarray:
    """The last input frame: ``(B, t_in, C, H, W)`` -> ``(B, C, H, W)``."""
    return x[:, -1]


def guard_check(engine: Any, who: str, strict: bool = False) -> Callable[[np.ndarray], None]:
    """The data guard on each chunk ``(T, C, H, W)``: the frame size first (refused, never resized), then
    :func:`stpatch.data.guard.conform` and :func:`~stpatch.data.guard.check_values`."""
    from stpatch.data import SpatioTemporalData, guard

    meta, profile = engine.meta, engine.profile
    trained = tuple(meta["spatial_shape"])
    seen = []  # conform's notes (time step, grid) are about the clip, not a chunk: judge the first chunk only

    def check(frames: np.ndarray) -> None:
        if tuple(frames.shape[2:]) != trained:
            raise guard.DataGuardError(
                f"{who}: frames are {frames.shape[2]} x {frames.shape[3]}, the run was trained on "
                f"{trained[0]} x {trained[1]}; frames are not resized here: crop or resize the clip to that size")
        data = SpatioTemporalData(kind="grid", segments=[frames], channels=[f"c{i}" for i in range(frames.shape[1])],
                                  name=who)
        if not seen:
            data = guard.conform(data, meta, profile, strict=strict, who=who)
            seen.append(True)
        guard.check_values(data, profile, strict=strict, who=who)

    return check


def peak_value(profile: dict | None) -> float:
    """The PSNR peak: the widest channel range of the run's data profile ([0, 1] video: 1)."""
    peaks = []
    for ch in (profile or {}).get("channels", []):
        low, high = (ch.get("valid_range") or [None, None])[:2]
        low = ch.get("min", 0.0) if low is None else low
        high = ch.get("max") if high is None else high
        if high is not None and low is not None and high > low:
            peaks.append(float(high) - float(low))
    return max(peaks) if peaks else 1.0


def patch_size(patch: int | tuple[int, int] | None, engine: Any) -> tuple[int, int]:
    """``(ph, pw)``: ``patch`` as given, else the model's spatial patch size, else ``(8, 8)``."""
    if patch is not None:
        p = (patch, patch) if np.isscalar(patch) else tuple(patch)
        if len(p) != 2 or min(p) < 1:
            raise ValueError(f"patch should be a positive size or (height, width), got {patch!r}")
        return int(p[0]), int(p[1])
    run = getattr(engine, "run", None)
    for module in (run.module.modules() if run is not None else ()):
        found = getattr(module, "patch", None)
        if isinstance(found, tuple) and len(found) == 3 and all(isinstance(v, int) for v in found):
            return found[1], found[2]
    return 8, 8


def default_output_dir(video_or_data: Any) -> Path:
    """``anomaly_<clip name>`` beside the working directory."""
    name = Path(video_or_data).stem if isinstance(video_or_data, (str, Path)) else "clip"
    return Path(f"anomaly_{name}")
