"""Transformer pieces: stochastic depth, MLP and the spacetime transformer block."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stpatch.nn.attention import SpacetimeAttention

__all__ = ["DropPath", "Mlp", "SpacetimeBlock"]


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch for a random subset of samples while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """``Linear(D -> r*D) -> GELU -> Linear(r*D -> D)`` on the last axis."""

    def __init__(self, dim: int, ratio: float = 4.0, drop: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SpacetimeBlock(nn.Module):
    """Pre-norm transformer block on a token grid: ``(B, nT, nH, nW, D) -> (B, nT, nH, nW, D)``.

    ``x = x + attn(norm(x)); x = x + mlp(norm(x))`` with :class:`~stpatch.nn.SpacetimeAttention`.
    ``forward(x, return_attention=True)`` also returns the attention maps.

    With ``layer_scale > 0`` each branch is multiplied by a learned per-channel scale that starts
    at that value (LayerScale, Touvron et al., ICCV 2021, "CaiT"): a block starts (almost) as the
    identity, so blocks added after a working network start from what that network does.

    Args:
        dim, heads, mode, window, shift: see :class:`~stpatch.nn.SpacetimeAttention`.
        mlp_ratio: MLP hidden size as a multiple of ``dim``.
        drop, attn_drop, drop_path: dropout after projections, on attention weights, stochastic depth.
        layer_scale: initial value of the per-channel branch scales (0: no scales).
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        mode: str = "joint",
        window: int | Sequence[int] = (2, 4, 4),
        shift: bool = False,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        layer_scale: float = 0.0,
    ) -> None:
        super().__init__()
        if layer_scale < 0:
            raise ValueError(f"layer_scale must be >= 0 (0: off), got {layer_scale}")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SpacetimeAttention(dim, heads, mode, window, shift, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio, drop)
        self.drop_path = DropPath(drop_path)
        if layer_scale > 0:
            self.gamma1 = nn.Parameter(torch.full((dim,), float(layer_scale)))
            self.gamma2 = nn.Parameter(torch.full((dim,), float(layer_scale)))
        else:
            self.gamma1 = self.gamma2 = None

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        if return_attention:
            a, maps = self.attn(self.norm1(x), return_attention=True)
        else:
            a = self.attn(self.norm1(x))
        x = x + self.drop_path(a if self.gamma1 is None else self.gamma1 * a)
        b = self.mlp(self.norm2(x))
        x = x + self.drop_path(b if self.gamma2 is None else self.gamma2 * b)
        return (x, maps) if return_attention else x
