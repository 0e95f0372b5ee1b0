"""Frames of a clip in chunks, with bounded memory: a video file, a folder of frames, a ``.npy`` array, an array.

Every source becomes chunks of float32 frames ``(T_chunk, C, H, W)`` in physical units (videos and images:
intensities in [0, 1], integers divided by their type's maximum, as :func:`stpatch.datasets.from_video`
does). A ``.npy`` file is memory-mapped and a video is decoded frame by frame, so a long clip never sits
in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class FrameSource:
    """A clip to score: ``chunks(size)`` yields ``(T_chunk, C, H, W)`` float32; ``length`` when known."""

    name: str
    length: int | None
    fps: float | None
    _read: Any  # (size) -> iterator of raw chunks (T, H, W[, C]) or (T, C, H, W)
    channels_last: bool

    def chunks(self, size: int, channels: int) -> Iterator[np.ndarray]:
        """Chunks of at most ``size`` frames ``(T_chunk, C, H, W)``, with ``channels`` channels (see :func:`to_channels`)."""
        for raw in self._read(max(1, int(size))):
            yield to_channels(_as_float(raw), channels, self.channels_last, self.name)


def _as_float(raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw)
    if np.issubdtype(raw.dtype, np.integer):
        return raw.astype(np.float32) / float(np.iinfo(raw.dtype).max)
    return raw.astype(np.float32, copy=False)


def to_channels(frames: np.ndarray, channels: int, channels_last: bool, who: str) -> np.ndarray:
    """``(T, H, W)``, ``(T, H, W, C)`` (``channels_last``) or ``(T, C, H, W)`` -> ``(T, channels, H, W)``.

    An image file's constant alpha channel is dropped; colour frames are averaged to grey when the run has one channel
    (the same rule as ``from_video(grayscale=True)``); grey frames are never invented into colour.
    """
    if frames.ndim == 3:
        frames = frames[:, None] if not channels_last else frames[..., None]
    if frames.ndim != 4:
        raise ValueError(f"{who}: expected frames (T, H, W), (T, H, W, C) or (T, C, H, W), got shape {frames.shape}")
    if channels_last:
        frames = np.moveaxis(frames, -1, 1)
        if frames.shape[1] in (2, 4) and np.all(frames[:, -1] == frames[:, -1].flat[0]):
            frames = frames[:, :-1]  # an image file's constant alpha
    c = frames.shape[1]
    if c == channels:
        return np.ascontiguousarray(frames)
    if channels == 1 and c == 3:
        return frames.mean(axis=1, keepdims=True)
    raise ValueError(f"{who}: the run was trained on {channels} channel(s), the clip has {c}; "
                     "give it frames with as many channels")


def open_frames(source: Any, name: str | None = None) -> FrameSource:
    """A :class:`FrameSource` for a video file (``.mp4``/``.avi``/``.gif`` ...), a folder of image files
    (sorted by name), a ``.npy`` file ``(T, C, H, W)`` or ``(T, H, W)``, another array file the package
    reads (``read_array_file``), a ``SpatioTemporalData`` (one segment) or an array ``(T, C, H, W)`` /
    ``(T, H, W)``. Raises ``FileNotFoundError`` / ``ValueError`` with what was wrong."""
    from stpatch.data import SpatioTemporalData

    if isinstance(source, SpatioTemporalData):
        if source.kind != "grid":
            raise ValueError(f"anomaly scoring needs video-like grid data (T, C, H, W), got {source.kind} data")
        if len(source.segments) != 1:
            raise ValueError(f"give one clip: the data holds {len(source.segments)} segments")
        fps = (source.attrs or {}).get("fps")
        return _array_source(np.asarray(source.segments[0]), name or source.name, fps)
    if isinstance(source, np.ndarray) or hasattr(source, "__array__") and not isinstance(source, (str, Path)):
        return _array_source(np.asarray(source), name or "array", None)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such clip: {path}")
    if path.is_dir():
        return _folder_source(path, name)
    suffix = path.suffix.lower()
    from stpatch.data.adapters.video import VIDEO_SUFFIXES

    if suffix == ".npy":
        try:
            array = np.load(path, mmap_mode="r")
        except Exception as err:  # noqa: BLE001 - numpy raises several kinds on a bad file
            raise ValueError(f"{path}: cannot read as a .npy array ({type(err).__name__}: {err})") from err
        return _array_source(array, name or path.stem, None)
    if suffix in VIDEO_SUFFIXES:
        return _video_source(path, name)
    from stpatch.data.adapters import read_array_file

    data = read_array_file(path, kind="grid")
    return open_frames(data, name or path.stem)


def _array_source(array: np.ndarray, name: str, fps: float | None) -> FrameSource:
    if array.ndim not in (3, 4):
        raise ValueError(f"{name}: expected frames (T, C, H, W) or (T, H, W), got shape {array.shape}")

    def read(size: int) -> Iterator[np.ndarray]:
        for start in range(0, array.shape[0], size):
            yield np.asarray(array[start:start + size])  # a memory map is read chunk by chunk

    return FrameSource(name, int(array.shape[0]), fps, read, channels_last=False)


def _folder_source(path: Path, name: str | None) -> FrameSource:
    import imageio.v3 as iio

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")

    def read(size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(files), size):
            frames = []
            for f in files[start:start + size]:
                try:
                    frames.append(np.asarray(iio.imread(f)))
                except Exception as err:  # noqa: BLE001 - plugins raise many kinds
                    raise ValueError(f"{f}: cannot read as an image ({type(err).__name__}: {err})") from err
            shapes = {f.shape for f in frames}
            if len(shapes) > 1:
                raise ValueError(f"{path}: the frames differ in size ({sorted(shapes)})")
            yield np.stack(frames)

    return FrameSource(name or path.name, len(files), None, read, channels_last=True)


def _video_source(path: Path, name: str | None) -> FrameSource:
    import imageio.v3 as iio

    from stpatch.data.adapters.video import PLUGIN_SUFFIXES

    hint = "; reading this format needs a video plugin: pip install av" if path.suffix.lower() in PLUGIN_SUFFIXES else ""
    try:
        meta = iio.immeta(path)
    except Exception as err:  # noqa: BLE001 - plugins raise many kinds
        raise ValueError(f"{path}: cannot read as video ({type(err).__name__}: {err}){hint}") from err
    fps = float(meta["fps"]) if meta.get("fps") else None
    duration = meta.get("duration")
    length = int(round(fps * float(duration))) if fps and duration and path.suffix.lower() != ".gif" else None

    def read(size: int) -> Iterator[np.ndarray]:
        batch: list[np.ndarray] = []
        try:
            for frame in iio.imiter(path):  # decoded one at a time: memory stays at one chunk
                batch.append(np.asarray(frame))
                if len(batch) == size:
                    yield np.stack(batch)
                    batch = []
        except Exception as err:  # noqa: BLE001 - plugins raise many kinds
            raise ValueError(f"{path}: cannot read as video ({type(err).__name__}: {err}){hint}") from err
        if batch:
            yield np.stack(batch)

    return FrameSource(name or path.stem, length, fps, read, channels_last=True)
