"""Synthetic unusual events injected into normal clips at known frames and places (ground truth for
:mod:`stpatch.anomaly.evaluation`).

Each injector takes a clip ``(T, C, H, W)`` in [0, 1] and returns a changed copy plus the truth: ``labels``
``(T,)`` (True inside the event and on the frame after it, where its end shows) and ``boxes`` ``(T, 4)``
pixel boxes ``(y0, x0, y1, x1)`` where the event is in each frame (``-1`` outside it; for a moving square,
the box spans its previous and current positions).

* ``appear``: a bright square that is not in the normal footage appears and drifts slowly;
* ``stop``: the region that moves most at the event's start freezes (an object that stops);
* ``fast``: that region's content is copied and sweeps across the frame at one box size per frame;
* ``flicker``: a region's brightness jumps up by 0.5 on every other frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EVENTS = ("appear", "stop", "fast", "flicker")


@dataclass
class Injected:
    """A clip with one event: ``clip`` ``(T, C, H, W)``, ``labels`` ``(T,)`` bool, ``boxes`` ``(T, 4)`` int."""

    clip: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    kind: str
    start: int
    length: int


def inject_event(clip: np.ndarray, kind: str, start: int, length: int, rng: np.random.Generator,
                 size: int | None = None) -> Injected:
    """Inject one ``kind`` of event (one of :data:`EVENTS`) into frames ``start .. start + length - 1`` of
    ``clip`` ``(T, C, H, W)``; ``size``: the event's box side in pixels (default a quarter of the smaller side)."""
    if kind not in EVENTS:
        raise ValueError(f"unknown event {kind!r}; expected one of {', '.join(EVENTS)}")
    t, _, h, w = clip.shape
    if not 1 <= start < start + length <= t:
        raise ValueError(f"event frames {start}..{start + length - 1} do not fit a clip of {t} frames (start >= 1)")
    size = int(size or max(4, min(h, w) // 4))
    out = np.array(clip, dtype=np.float32, copy=True)
    boxes = np.full((t, 4), -1, dtype=np.int64)
    frames = range(start, start + length)
    previous = None  # a moving square's last position (y, x)
    if kind == "appear":
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        dy, dx = rng.choice([-1, 1], size=2)
        for k, f in enumerate(frames):
            yy, xx = _bounce(y + dy * k, h - size), _bounce(x + dx * k, w - size)
            out[f, :, yy:yy + size, xx:xx + size] = 1.0
            boxes[f] = _path_box(previous, yy, xx, size)
            previous = (yy, xx)
    elif kind == "stop":
        y, x = _busiest(clip, start, size)
        for f in frames:
            out[f, :, y:y + size, x:x + size] = clip[start - 1, :, y:y + size, x:x + size]
            boxes[f] = (y, x, y + size, x + size)
    elif kind == "fast":
        y, x = _busiest(clip, start, size)
        patch = clip[start, :, y:y + size, x:x + size].copy()
        vy, vx = rng.choice([-1, 1], size=2) * size
        for k, f in enumerate(frames):
            yy, xx = _bounce(y + vy * (k + 1), h - size), _bounce(x + vx * (k + 1), w - size)  # off at once
            out[f, :, yy:yy + size, xx:xx + size] = patch
            boxes[f] = _path_box(previous, yy, xx, size)
            previous = (yy, xx)
    else:  # flicker
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        for k, f in enumerate(frames):
            if k % 2 == 0:
                region = out[f, :, y:y + size, x:x + size]
                out[f, :, y:y + size, x:x + size] = np.clip(region + 0.5, 0.0, 1.0)
            boxes[f] = (y, x, y + size, x + size)
    # the frame after the event shows its end (the object vanishes, the region jumps back): part of the event
    end = start + length
    if end < t and (kind != "flicker" or (length - 1) % 2 == 0):  # a flicker that ended dark shows no end
        boxes[end] = boxes[end - 1] if kind not in ("appear", "fast") else (yy, xx, yy + size, xx + size)
    labels = boxes[:, 0] >= 0
    return Injected(out, labels, boxes, kind, int(start), int(length))


def _path_box(previous: tuple[int, int] | None, y: int, x: int, size: int) -> tuple[int, int, int, int]:
    """The box a ``size`` square covers at its ``previous`` corner and at ``(y, x)``: the error of a forecast
    that expected it at the old place lies on both."""
    py, px = previous if previous is not None else (y, x)
    return min(y, py), min(x, px), max(y, py) + size, max(x, px) + size


def _bounce(position: int, limit: int) -> int:
    """``position`` reflected into ``[0, limit]`` (moving boxes bounce off the frame's edges)."""
    if limit <= 0:
        return 0
    period = 2 * limit
    p = int(position) % period
    return p if p <= limit else period - p


def _busiest(clip: np.ndarray, start: int, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` box with the most motion between frames ``start - 1`` and ``start``
    (the box holding a moving object), found on a stride-``size // 2`` grid."""
    motion = np.abs(clip[start] - clip[start - 1]).sum(axis=0) + 1e-3 * clip[start].sum(axis=0)
    h, w = motion.shape
    step = max(1, size // 2)
    best, corner = -1.0, (0, 0)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            value = float(motion[y:y + size, x:x + size].sum())
            if value > best:
                best, corner = value, (y, x)
    return corner


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether pixel boxes ``(y0, x0, y1, x1)`` share at least one pixel."""
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
