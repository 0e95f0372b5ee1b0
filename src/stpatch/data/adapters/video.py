"""Video files and animated GIFs -> grid ``SpatioTemporalData`` ``(T, C, H, W)`` in [0, 1] (imageio v3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core import SpatioTemporalData

__all__ = ["from_video", "VIDEO_SUFFIXES"]

#: Suffixes read as videos; those of PLUGIN_SUFFIXES need a video plugin (PyAV or imageio-ffmpeg).
PLUGIN_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
VIDEO_SUFFIXES = (".gif", *PLUGIN_SUFFIXES, ".apng", ".png")


def from_video(
    path, grayscale="auto", max_frames: int | None = None, name: str | None = None
) -> SpatioTemporalData:
    """A video file or animated GIF as a grid ``(T, C, H, W)`` float32 in [0, 1].

    ``grayscale="auto"`` keeps one channel when all colour channels are equal (GIFs store grey
    frames as RGB); ``True`` averages colours to one channel; ``False`` keeps RGB.  A constant
    alpha channel is dropped.  ``attrs["fps"]`` holds the frame rate when the file states it.
    """
    import imageio.v3 as iio

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such video file: {path}")
    try:
        frames = iio.imread(path, index=None)
        props = iio.improps(path, index=None)
    except Exception as e:  # noqa: BLE001 - plugins raise many kinds
        hint = ""
        if path.suffix.lower() in PLUGIN_SUFFIXES:
            hint = "; reading this format needs a video plugin: pip install av (or imageio-ffmpeg)"
        raise ValueError(f"{path}: cannot read as video ({type(e).__name__}: {e}){hint}") from e
    frames = np.asarray(frames)
    if not getattr(props, "is_batch", True):
        frames = frames[None]
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4:
        raise ValueError(f"{path}: expected frames (T, H, W[, C]), found shape {frames.shape}")
    if max_frames is not None:
        frames = frames[: int(max_frames)]
    if frames.shape[-1] in (2, 4):
        alpha = frames[..., -1]
        if np.all(alpha == alpha.flat[0]):
            frames = frames[..., :-1]
    if np.issubdtype(frames.dtype, np.integer):
        scale = float(np.iinfo(frames.dtype).max)
        x = frames.astype(np.float32) / scale
    else:
        x = np.clip(frames.astype(np.float32), 0.0, 1.0)
    c = x.shape[-1]
    if c > 1 and (
        grayscale is True
        or (grayscale == "auto" and all(np.array_equal(x[..., 0], x[..., k]) for k in range(1, c)))
    ):
        x = x.mean(-1, keepdims=True) if grayscale is True else x[..., :1]
    channels = ["gray"] if x.shape[-1] == 1 else ["red", "green", "blue", "alpha"][: x.shape[-1]]
    fps = None
    try:
        meta = iio.immeta(path)
        if meta.get("fps"):
            fps = float(meta["fps"])
        elif meta.get("duration"):
            fps = 1000.0 / float(meta["duration"])
    except Exception:  # noqa: BLE001 - metadata is optional
        pass
    return SpatioTemporalData(
        kind="grid",
        segments=[np.ascontiguousarray(np.moveaxis(x, -1, 1))],
        channels=channels,
        name=name or path.stem,
        # what the data guard judges input by: intensities in [0, 1] (integers were divided by their maximum)
        attrs={"source_file": str(path), "fps": fps, "field": "video", "units": "intensity in [0, 1]",
               "valid_range": (0.0, 1.0)},
    )

