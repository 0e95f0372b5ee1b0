"""Small helpers shared by the layers: argument normalisation and input checks."""

from __future__ import annotations

from collections.abc import Sequence

import torch

Size3 = tuple[int, int, int]


def to_3tuple(value: int | Sequence[int], name: str = "size") -> Size3:
    """``3 -> (3, 3, 3)``; a sequence of three positive ints is returned as a tuple."""
    if isinstance(value, int):
        value = (value, value, value)
    out = tuple(int(v) for v in value)
    if len(out) != 3:
        raise ValueError(f"{name} must be an int or 3 ints (t, h, w), got {value!r}")
    if any(v <= 0 for v in out):
        raise ValueError(f"{name} entries must be positive, got {out}")
    return out  # type: ignore[return-value]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def check_ndim(x: torch.Tensor, ndim: int, layout: str, where: str) -> None:
    """Raise a ValueError naming the expected layout when ``x`` has the wrong rank."""
    if x.ndim != ndim:
        raise ValueError(f"{where} expects {layout} ({ndim} dims), got shape {tuple(x.shape)}")


def group_count(channels: int, preferred: int = 8) -> int:
    """Largest group count ``<= preferred`` that divides ``channels`` (for GroupNorm)."""
    for g in range(min(preferred, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1
