"""Spacetime attention over a token grid ``(B, nT, nH, nW, D)``, one mechanism for all patterns.

Every mode is self-attention inside *cuboids*, boxes that tile the (padded) token grid, as in
Earthformer's cuboid attention:

========== ====================================================== ============================
mode       cuboid passes (``None`` = the whole axis)               each token attends to
========== ====================================================== ============================
joint      ``(nT, nH, nW)``                                        every token
divided    ``(nT, 1, 1)`` then ``(1, nH, nW)``                     its time line, then its frame
axial      ``(nT, 1, 1)``, ``(1, nH, 1)``, ``(1, 1, nW)``          its time, column, then row line
window     ``(wt, wh, ww)``, optionally shifted by half a window   its local cuboid
========== ====================================================== ============================

The grid is zero-padded at the end to a multiple of the cuboid; a shifted window also rolls the
grid by half a window (as in Swin and Earthformer), and a mask keeps tokens that the roll
brought together from opposite ends apart. Padded keys are masked out, padded queries cropped. A pass with several cuboid shapes applies them in turn,
each with its own projections and a residual between passes: ``h <- h + pass_i(h)`` for all but
the last, whose output is returned.

The normal path calls :func:`torch.nn.functional.scaled_dot_product_attention`. With
``return_attention=True``, or inside a :func:`capture_attention` that covers the layer (opened in
the calling thread), the softmax weights are computed explicitly and returned as
:class:`AttentionMap` records (one per pass); :func:`attention_importance` turns them into a
per-token map ``(B, nT, nH, nW)``. Maps and capture live in :mod:`stpatch.nn.attention_maps`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from stpatch.nn._utils import ceil_div, check_ndim, to_3tuple
from stpatch.nn.attention_maps import (  # re-exported: they were defined here
    AttentionCapture,
    AttentionMap,
    attention_importance,
    capture_attention,
    captures_for,
)

__all__ = [
    "ATTENTION_MODES",
    "AttentionCapture",
    "AttentionMap",
    "CuboidAttention",
    "CuboidLayout",
    "SpacetimeAttention",
    "attention_importance",
    "capture_attention",
    "cuboid_layout",
    "cuboid_passes",
]

ATTENTION_MODES = ("joint", "divided", "window", "axial")
Cuboid = tuple[int | None, int | None, int | None]


# --------------------------------------------------------------------------- cuboid geometry


@dataclass(frozen=True)
class CuboidLayout:
    """How a token grid is cut into cuboids.

    The grid is zero-padded at the end of each axis to a multiple of the cuboid, then (for a
    shifted window) rolled back by ``shift`` so the cuboid borders move, as in Swin/Earthformer.
    Tokens that the roll brings together from opposite ends of an axis are kept apart by
    :meth:`attention_mask`, as are padded keys.

    Attributes:
        grid: the token grid ``(nT, nH, nW)``.
        cuboid: ``(ct, ch, cw)``, each at most the grid size.
        shift: cyclic shift per axis (0 where not shifted).
        padded: ``(Tp, Hp, Wp)``, the grid rounded up to multiples of ``cuboid``.
    """

    grid: tuple[int, int, int]
    cuboid: tuple[int, int, int]
    shift: tuple[int, int, int]
    padded: tuple[int, int, int]

    @property
    def num_cuboids(self) -> int:
        """``M``."""
        return math.prod(p // c for p, c in zip(self.padded, self.cuboid))

    @property
    def cuboid_volume(self) -> int:
        """``L``, tokens per cuboid."""
        return math.prod(self.cuboid)

    @property
    def is_padded(self) -> bool:
        return self.padded != self.grid

    @property
    def needs_mask(self) -> bool:
        return self.is_padded or any(self.shift)

    def partition(self, x: torch.Tensor, pad_value: float = 0.0) -> torch.Tensor:
        """``(B, nT, nH, nW, C) -> (B, M, L, C)``: pad, roll, cut into cuboids."""
        if self.is_padded:
            (t, h, w), (tp, hp, wp) = self.grid, self.padded
            x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h, 0, tp - t), value=pad_value)
        if any(self.shift):
            x = torch.roll(x, shifts=tuple(-s for s in self.shift), dims=(1, 2, 3))
        ct, ch, cw = self.cuboid
        return rearrange(x, "b (nt ct) (nh ch) (nw cw) c -> b (nt nh nw) (ct ch cw) c", ct=ct, ch=ch, cw=cw)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, M, L, C) -> (B, nT, nH, nW, C)``, the inverse of :meth:`partition` (padding cropped)."""
        (ct, ch, cw), (tp, hp, wp) = self.cuboid, self.padded
        x = rearrange(
            x, "b (nt nh nw) (ct ch cw) c -> b (nt ct) (nh ch) (nw cw) c",
            nt=tp // ct, nh=hp // ch, nw=wp // cw, ct=ct, ch=ch, cw=cw,
        )
        if any(self.shift):
            x = torch.roll(x, shifts=self.shift, dims=(1, 2, 3))
        if self.is_padded:
            t, h, w = self.grid
            x = x[:, :t, :h, :w]
        return x

    def token_index(self, device: torch.device | None = None) -> torch.Tensor:
        """``(M, L)`` long: flat index ``(t*nH + h)*nW + w`` of each cuboid slot, ``-1`` for padding."""
        t, h, w = self.grid
        idx = torch.arange(t * h * w, device=device).reshape(1, t, h, w, 1)
        return self.partition(idx, pad_value=-1)[0, :, :, 0]

    def valid_mask(self, device: torch.device | None = None) -> torch.Tensor:
        """``(M, L)`` bool, True where a slot holds a real token."""
        return self.token_index(device) >= 0

    def region_labels(self, device: torch.device | None = None) -> torch.Tensor:
        """``(M, L)`` long: slots with different labels came from opposite ends of a rolled axis."""
        labels = []
        for p, c, s in zip(self.padded, self.cuboid, self.shift):
            r = torch.arange(p, device=device)
            labels.append(torch.zeros_like(r) if s == 0 else (r >= p - c).long() + (r >= p - s).long())
        lt, lh, lw = labels
        grid = (lt[:, None, None] * 9 + lh[None, :, None] * 3 + lw[None, None, :])[None, ..., None]
        ct, ch, cw = self.cuboid
        return rearrange(grid, "b (nt ct) (nh ch) (nw cw) c -> b (nt nh nw) (ct ch cw) c", ct=ct, ch=ch, cw=cw)[0, :, :, 0]

    def attention_mask(self, device: torch.device | None = None) -> torch.Tensor | None:
        """Which keys each query may attend to, or ``None`` when all may.

        ``(M, 1, L)`` (padding only) or ``(M, L, L)`` (shifted) bool, True = allowed: the key is
        a real token from the query's side of every rolled axis. Each slot may always attend to
        itself, so padded query rows (cropped later) never become all-masked.
        """
        if not self.needs_mask:
            return None
        valid = self.valid_mask(device)
        eye = torch.eye(self.cuboid_volume, dtype=torch.bool, device=device)
        if not any(self.shift):
            return valid[:, None, :] | eye
        labels = self.region_labels(device)
        return ((labels[:, :, None] == labels[:, None, :]) & valid[:, None, :]) | eye


def cuboid_layout(grid: Sequence[int], cuboid: Cuboid, shift: bool = False) -> CuboidLayout:
    """Resolve a cuboid spec (``None`` = whole axis, sizes clamped to the grid) on a token grid.

    ``shift=True`` rolls the grid by half a cuboid on every axis the cuboid does not cover
    entirely (a shifted window).
    """
    grid = to_3tuple(grid, "grid")
    size = tuple(n if c is None else min(int(c), n) for n, c in zip(grid, cuboid))
    shifts = tuple(c // 2 if shift and c < n else 0 for n, c in zip(grid, size))
    padded = tuple(ceil_div(n, c) * c for n, c in zip(grid, size))
    return CuboidLayout(grid, size, shifts, padded)  # type: ignore[arg-type]


def cuboid_passes(mode: str, window: Sequence[int] | None = None) -> list[Cuboid]:
    """The cuboid shapes (``None`` = whole axis) that a mode applies in turn."""
    if mode == "joint":
        return [(None, None, None)]
    if mode == "divided":
        return [(None, 1, 1), (1, None, None)]
    if mode == "axial":
        return [(None, 1, 1), (1, None, 1), (1, 1, None)]
    if mode == "window":
        if window is None:
            raise ValueError("mode='window' needs window=(wt, wh, ww)")
        return [to_3tuple(window, "window")]
    raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {mode!r}")


# --------------------------------------------------------------------------- layers


class CuboidAttention(nn.Module):
    """Multi-head self-attention inside the cuboids of one shape: ``(B, nT, nH, nW, D) -> same``.

    Args:
        dim: ``D``, divisible by ``heads``.
        heads: attention heads.
        cuboid: ``(ct, ch, cw)``, ``None`` entries meaning the whole axis.
        shift: shift the cuboid borders by half a cuboid (see :func:`cuboid_layout`).
        qkv_bias, attn_drop, proj_drop: as usual.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        cuboid: Cuboid = (None, None, None),
        shift: bool = False,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.dim, self.heads = dim, heads
        self.cuboid = tuple(cuboid)
        self.shift = shift
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def layout(self, grid: Sequence[int]) -> CuboidLayout:
        return cuboid_layout(grid, self.cuboid, self.shift)  # type: ignore[arg-type]

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, AttentionMap]:
        check_ndim(x, 5, "tokens (B, nT, nH, nW, D)", type(self).__name__)
        b = x.shape[0]
        layout = self.layout(x.shape[1:4])
        parts = layout.partition(self.qkv(x))  # (B, M, L, 3D)
        m, n = parts.shape[1:3]
        q, k, v = rearrange(parts, "b m l (three h d) -> three (b m) h l d", three=3, h=self.heads)
        mask = layout.attention_mask(x.device)  # None, (M, 1, L) or (M, L, L)
        if mask is not None:
            mask = mask[None].expand(b, -1, -1, -1).reshape(b * m, 1, mask.shape[1], n)
        drop = self.attn_drop if self.training else 0.0
        captures = captures_for(self)  # open in this thread and covering this layer
        want = return_attention or bool(captures)
        if want:
            scores = (q @ k.transpose(-2, -1)) * self.scale
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            out = F.dropout(weights, drop, training=True) @ v if drop else weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        out = rearrange(out, "(b m) h l d -> b m l (h d)", b=b)
        out = self.proj_drop(self.proj(layout.merge(out)))
        if not want:
            return out
        amap = AttentionMap(rearrange(weights, "(b m) h i j -> b h m i j", b=b), layout)
        for capture in captures:
            capture.record(self, amap)
        return (out, amap) if return_attention else out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, cuboid={self.cuboid}, shift={self.shift}"


class SpacetimeAttention(nn.Module):
    """Multi-head spacetime self-attention on a token grid: ``(B, nT, nH, nW, D) -> (B, nT, nH, nW, D)``.

    One mechanism (attention inside cuboids, see the module docstring) with four patterns.

    Args:
        dim: ``D``.
        heads: attention heads (``D % heads == 0``).
        mode: ``"joint"``, ``"divided"``, ``"window"`` or ``"axial"``.
        window: ``(wt, wh, ww)`` cuboid for ``mode="window"`` (clamped to the grid).
        shift: shift the windows by half a window (use on every other block).
        qkv_bias, attn_drop, proj_drop: as usual.

    ``forward(x, return_attention=True)`` returns ``(out, maps)`` with one :class:`AttentionMap`
    per pass (``weights`` of shape ``(B, heads, M, L, L)``; for ``joint``, ``M = 1`` and
    ``L = nT*nH*nW``).

    >>> attn = SpacetimeAttention(16, heads=2, mode="window", window=(2, 4, 4), shift=True)
    >>> out, maps = attn(torch.zeros(2, 3, 5, 7, 16), return_attention=True)
    >>> tuple(out.shape), tuple(maps[0].weights.shape)
    ((2, 3, 5, 7, 16), (2, 2, 8, 32, 32))
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        mode: str = "joint",
        window: int | Sequence[int] = (2, 4, 4),
        shift: bool = False,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.window = to_3tuple(window, "window")
        self.shift = shift and mode == "window"
        self.passes = nn.ModuleList(
            CuboidAttention(dim, heads, cuboid, self.shift, qkv_bias, attn_drop, proj_drop)
            for cuboid in cuboid_passes(mode, self.window)
        )

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[AttentionMap]]:
        maps: list[AttentionMap] = []
        h = x
        for i, layer in enumerate(self.passes):
            if return_attention:
                out, amap = layer(h, return_attention=True)
                maps.append(amap)
            else:
                out = layer(h)
            h = out if i == len(self.passes) - 1 else h + out
        return (h, maps) if return_attention else h

    def extra_repr(self) -> str:
        extra = f", window={self.window}, shift={self.shift}" if self.mode == "window" else ""
        return f"mode={self.mode!r}{extra}"
