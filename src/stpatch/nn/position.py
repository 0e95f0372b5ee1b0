"""Positional encodings for a token grid ``(B, nT, nH, nW, D)``.

Both encodings work on grids of any size: the learned tables are interpolated when the grid
differs from the one they were built for, and the sine-cosine code is computed on the fly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stpatch.nn._utils import check_ndim, to_3tuple

__all__ = ["LearnedPosition3d", "SinCosPosition3d", "sincos_1d"]


class LearnedPosition3d(nn.Module):
    """Factorised learned position: ``pos[t, h, w] = T[t] + H[h] + W[w]``.

    Args:
        dim: token features ``D``.
        grid: ``(nT, nH, nW)`` the tables are built for. Another grid size at run time linearly
            interpolates each table along its axis.
        init_std: std of the normal initialisation.

    Shapes:
        ``forward(x: (B, nT, nH, nW, D)) -> x + pos`` (same shape); ``encoding((nT, nH, nW)) -> (nT, nH, nW, D)``.

    >>> pos = LearnedPosition3d(8, (4, 6, 6))
    >>> pos(torch.zeros(1, 2, 9, 5, 8)).shape
    torch.Size([1, 2, 9, 5, 8])
    """

    def __init__(self, dim: int, grid: int | Sequence[int], init_std: float = 0.02) -> None:
        super().__init__()
        self.dim = dim
        self.grid = to_3tuple(grid, "grid")
        self.time = nn.Parameter(torch.randn(self.grid[0], dim) * init_std)
        self.height = nn.Parameter(torch.randn(self.grid[1], dim) * init_std)
        self.width = nn.Parameter(torch.randn(self.grid[2], dim) * init_std)

    @staticmethod
    def _resize(table: torch.Tensor, n: int) -> torch.Tensor:
        if table.shape[0] == n:
            return table
        return F.interpolate(table.t()[None], size=n, mode="linear", align_corners=False)[0].t()

    def encoding(self, size: Sequence[int]) -> torch.Tensor:
        """``(nT, nH, nW, D)`` position code for a grid of ``size``."""
        t, h, w = to_3tuple(size, "grid size")
        return (
            self._resize(self.time, t)[:, None, None]
            + self._resize(self.height, h)[None, :, None]
            + self._resize(self.width, w)[None, None, :]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_ndim(x, 5, "tokens (B, nT, nH, nW, D)", "LearnedPosition3d")
        return x + self.encoding(x.shape[1:4]).to(x.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, grid={self.grid}"


def sincos_1d(n: int, dim: int, temperature: float = 10000.0, device=None) -> torch.Tensor:
    """``(n, dim)`` sine-cosine code of positions ``0..n-1`` (``dim`` even): sines then cosines."""
    if dim % 2:
        raise ValueError(f"sincos_1d needs an even dim, got {dim}")
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(-math.log(temperature) * torch.arange(dim // 2, dtype=torch.float32, device=device) / max(dim // 2, 1))
    angle = pos * freq[None]
    return torch.cat([angle.sin(), angle.cos()], dim=1)


class SinCosPosition3d(nn.Module):
    """Fixed 3-D sine-cosine position, computed on the fly for any grid size.

    The features are split into three equal even parts for time, height and width (``6*(D//6)``
    features; the few left over are zero). No parameters.

    Shapes:
        ``forward(x: (B, nT, nH, nW, D)) -> x + pos``; ``encoding((nT, nH, nW)) -> (nT, nH, nW, D)``.

    >>> SinCosPosition3d(12).encoding((2, 3, 4)).shape
    torch.Size([2, 3, 4, 12])
    """

    def __init__(self, dim: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if dim < 6:
            raise ValueError(f"SinCosPosition3d needs dim >= 6 (2 per axis), got {dim}")
        self.dim = dim
        self.temperature = temperature

    def encoding(self, size: Sequence[int], device=None) -> torch.Tensor:
        """``(nT, nH, nW, D)`` position code for a grid of ``size``."""
        t, h, w = to_3tuple(size, "grid size")
        part = 2 * (self.dim // 6)
        et = sincos_1d(t, part, self.temperature, device)[:, None, None].expand(t, h, w, part)
        eh = sincos_1d(h, part, self.temperature, device)[None, :, None].expand(t, h, w, part)
        ew = sincos_1d(w, part, self.temperature, device)[None, None, :].expand(t, h, w, part)
        rest = torch.zeros(t, h, w, self.dim - 3 * part, device=device)
        return torch.cat([et, eh, ew, rest], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_ndim(x, 5, "tokens (B, nT, nH, nW, D)", "SinCosPosition3d")
        if x.shape[-1] != self.dim:
            raise ValueError(f"SinCosPosition3d built for D={self.dim}, got tokens {tuple(x.shape)}")
        return x + self.encoding(x.shape[1:4], x.device).to(x.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, temperature={self.temperature}"
