"""Tubelet (spacetime patch) embedding of a grid sequence.

``(B, T, C, H, W) -> (B, nT, nH, nW, dim)`` with ``nT = ceil(T / pt)`` etc. Inputs whose sizes do
not divide the patch are padded at the end of each axis; the returned
:class:`~stpatch.patches.PatchGrid` records the original and padded sizes so a head can crop back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from stpatch.nn._utils import ceil_div, check_ndim, to_3tuple
from stpatch.patches import PatchGrid

__all__ = ["PatchEmbed", "pad_to_patch"]


def pad_to_patch(
    x: torch.Tensor, patch: Sequence[int], mode: str = "replicate"
) -> tuple[torch.Tensor, PatchGrid]:
    """Pad a grid sequence at the end of T, H and W to multiples of ``patch``.

    Args:
        x: ``(B, T, C, H, W)``.
        patch: ``(pt, ph, pw)``.
        mode: ``"replicate"`` (repeat the last frame / edge pixels) or ``"zeros"``.

    Returns:
        The padded ``(B, Tp, C, Hp, Wp)`` tensor and the :class:`PatchGrid` that describes it.
    """
    check_ndim(x, 5, "a grid (B, T, C, H, W)", "pad_to_patch")
    if mode not in ("replicate", "zeros"):
        raise ValueError(f"pad mode must be 'replicate' or 'zeros', got {mode!r}")
    pt, ph, pw = to_3tuple(patch, "patch")
    _, t, c, h, w = x.shape
    num = (ceil_div(t, pt), ceil_div(h, ph), ceil_div(w, pw))
    padded = (num[0] * pt, num[1] * ph, num[2] * pw)
    grid = PatchGrid((t, h, w), c, (pt, ph, pw), (pt, ph, pw), padded, num, mode)
    if padded != (t, h, w):
        pads = (0, padded[2] - w, 0, padded[1] - h, 0, padded[0] - t)
        xc = rearrange(x, "b t c h w -> b c t h w")
        if mode == "replicate":
            xc = F.pad(xc, pads, mode="replicate")
        else:
            xc = F.pad(xc, pads)
        x = rearrange(xc, "b c t h w -> b t c h w")
    return x, grid


class PatchEmbed(nn.Module):
    """Embed non-overlapping tubelets of ``pt x ph x pw`` pixels into ``dim`` features.

    A ``Conv3d`` with ``kernel = stride = patch`` (equivalently, a linear map of each flattened
    tubelet), after end-padding T, H and W to multiples of the patch.

    Args:
        in_channels: ``C``.
        dim: output features per token.
        patch: ``(pt, ph, pw)`` or one int.
        pad_mode: ``"replicate"`` (default) or ``"zeros"``.
        norm: apply a LayerNorm to the tokens.

    Shapes:
        ``forward(x: (B, T, C, H, W)) -> (tokens (B, nT, nH, nW, dim), grid: PatchGrid)``.

    >>> embed = PatchEmbed(1, 16, (2, 4, 4))
    >>> tokens, grid = embed(torch.zeros(2, 5, 1, 30, 45))
    >>> tuple(tokens.shape), grid.size
    ((2, 3, 8, 12, 16), (5, 30, 45))
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        patch: int | Sequence[int] = (2, 4, 4),
        pad_mode: str = "replicate",
        norm: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.dim = dim
        self.patch = to_3tuple(patch, "patch")
        if pad_mode not in ("replicate", "zeros"):
            raise ValueError(f"pad_mode must be 'replicate' or 'zeros', got {pad_mode!r}")
        self.pad_mode = pad_mode
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=self.patch, stride=self.patch)
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()

    def num_patches(self, size: Sequence[int]) -> tuple[int, int, int]:
        """Token grid ``(nT, nH, nW)`` for an input of size ``(T, H, W)``."""
        return tuple(ceil_div(n, p) for n, p in zip(size, self.patch))  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, PatchGrid]:
        check_ndim(x, 5, "a grid (B, T, C, H, W)", "PatchEmbed")
        if x.shape[2] != self.in_channels:
            raise ValueError(
                f"PatchEmbed expects C={self.in_channels} channels on axis 2 of (B, T, C, H, W), "
                f"got shape {tuple(x.shape)}"
            )
        x, grid = pad_to_patch(x, self.patch, self.pad_mode)
        y = self.proj(rearrange(x, "b t c h w -> b c t h w"))
        return self.norm(rearrange(y, "b d t h w -> b t h w d")), grid

    def extra_repr(self) -> str:
        return f"patch={self.patch}, pad_mode={self.pad_mode!r}"
