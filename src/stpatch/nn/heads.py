"""Heads: from a token grid back to frames."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from stpatch.nn._utils import check_ndim, to_3tuple
from stpatch.patches import PatchGrid

__all__ = ["FrameRefiner", "PatchHead"]


class PatchHead(nn.Module):
    """Turn tokens ``(B, nT, nH, nW, dim)`` into frames ``(B, T_out, C_out, H, W)``.

    Two ways to produce ``T_out`` frames:

    * ``t_tokens`` given (the default in the forecasters): every spatial patch flattens its
      ``t_tokens`` time tokens and one linear layer predicts all ``T_out`` frames of its
      ``ph x pw`` pixels, ``Linear(t_tokens*dim -> T_out*ph*pw*C_out)``. ``T_out`` is free.
    * ``t_tokens=None``: each token is un-patched on its own, ``Linear(dim -> pt*ph*pw*C_out)``,
      and the first ``T_out`` of the ``nT*pt`` frames are kept (needs ``nT*pt >= T_out``).

    The spatial padding added by :class:`~stpatch.nn.PatchEmbed` is cropped using the
    :class:`~stpatch.patches.PatchGrid` (or an explicit ``(H, W)``).

    Args:
        dim: token features.
        out_channels: ``C_out``.
        t_out: frames to produce.
        patch: ``(pt, ph, pw)`` of the embedding.
        t_tokens: number of time tokens the head will see (fixes ``nT``), or ``None``.
        zero_init: start with zero output weights (a residual forecaster then starts as
            persistence).
        kernel: spatial extent of the projection on the token grid (with ``t_tokens``): 1 is a
            linear map of each patch on its own; 3 lets every patch's pixels read the 3x3
            neighbouring tokens (a ``Conv2d``), so patch borders agree instead of showing as a grid.

    >>> head = PatchHead(16, 1, t_out=7, patch=(2, 4, 4), t_tokens=3)
    >>> head(torch.zeros(2, 3, 8, 12, 16), (30, 45)).shape
    torch.Size([2, 7, 1, 30, 45])
    """

    def __init__(
        self,
        dim: int,
        out_channels: int,
        t_out: int,
        patch: int | Sequence[int],
        t_tokens: int | None = None,
        zero_init: bool = False,
        kernel: int = 1,
    ) -> None:
        super().__init__()
        self.patch = to_3tuple(patch, "patch")
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"PatchHead kernel must be an odd size >= 1, got {kernel}")
        if kernel > 1 and t_tokens is None:
            raise ValueError("PatchHead kernel > 1 needs t_tokens (the head that predicts all T_out frames)")
        self.kernel = int(kernel)
        self.out_channels = out_channels
        self.t_out = int(t_out)
        self.t_tokens = t_tokens
        pt, ph, pw = self.patch
        self.norm = nn.LayerNorm(dim)
        if t_tokens is None:
            self.proj = nn.Linear(dim, pt * ph * pw * out_channels)
        elif self.kernel == 1:
            self.proj = nn.Linear(t_tokens * dim, self.t_out * ph * pw * out_channels)
        else:
            self.proj = nn.Conv2d(t_tokens * dim, self.t_out * ph * pw * out_channels, self.kernel,
                                  padding=self.kernel // 2, padding_mode="replicate")
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, tokens: torch.Tensor, size: PatchGrid | Sequence[int]) -> torch.Tensor:
        """``tokens (B, nT, nH, nW, dim)``, ``size`` a PatchGrid or ``(H, W)`` -> ``(B, T_out, C_out, H, W)``."""
        check_ndim(tokens, 5, "tokens (B, nT, nH, nW, dim)", "PatchHead")
        h, w = size.size[1:] if isinstance(size, PatchGrid) else tuple(size)[-2:]
        pt, ph, pw = self.patch
        x = self.norm(tokens)
        if self.t_tokens is None:
            nt = x.shape[1]
            if nt * pt < self.t_out:
                raise ValueError(
                    f"PatchHead without t_tokens makes nT*pt={nt * pt} frames, fewer than t_out={self.t_out}; "
                    "pass t_tokens to predict all frames from the flattened time tokens"
                )
            x = self.proj(x)
            out = rearrange(
                x, "b nt nh nw (c pt ph pw) -> b (nt pt) c (nh ph) (nw pw)", c=self.out_channels, pt=pt, ph=ph, pw=pw
            )
        else:
            if x.shape[1] != self.t_tokens:
                raise ValueError(
                    f"PatchHead was built for t_tokens={self.t_tokens} time tokens, got tokens of shape "
                    f"{tuple(tokens.shape)}; the forecaster's t_in must match the input length"
                )
            if self.kernel == 1:
                x = self.proj(rearrange(x, "b nt nh nw d -> b nh nw (nt d)"))
            else:
                x = rearrange(self.proj(rearrange(x, "b nt nh nw d -> b (nt d) nh nw")), "b k nh nw -> b nh nw k")
            out = rearrange(
                x, "b nh nw (t c ph pw) -> b t c (nh ph) (nw pw)", t=self.t_out, c=self.out_channels, ph=ph, pw=pw
            )
        return out[:, : self.t_out, :, :h, :w]

    def extra_repr(self) -> str:
        return f"patch={self.patch}, t_out={self.t_out}, t_tokens={self.t_tokens}, kernel={self.kernel}"


class FrameRefiner(nn.Module):
    """Full-resolution detail on top of a patch forecast: ``(B, T_out, C, H, W) -> same``.

    A patch head predicts each ``ph x pw`` block from a token, so edges inside a block are as
    sharp as the token's features allow. This small 2-D conv net works on the pixels of every
    output frame: it reads the frame, the last input frame and the last input change
    (``x[-1] - x[-2]``, the motion cue) and adds a correction whose last layer starts at zero,
    so a new refiner leaves the forecast unchanged.

    Args:
        channels: ``C`` of the frames.
        width: hidden channels of the 3x3 convolutions.
        depth: number of hidden 3x3 convolutions (>= 1).

    >>> refine = FrameRefiner(1, width=8)
    >>> y = torch.rand(2, 5, 1, 12, 10)
    >>> torch.equal(refine(y, torch.rand(2, 4, 1, 12, 10)), y)  # zero-initialised
    True
    """

    def __init__(self, channels: int, width: int = 16, depth: int = 2) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"FrameRefiner needs width >= 1 and depth >= 1, got width={width}, depth={depth}")
        layers: list[nn.Module] = []
        c_in = 3 * channels
        for _ in range(depth):
            layers += [nn.Conv2d(c_in, width, 3, padding=1, padding_mode="replicate"), nn.GELU()]
            c_in = width
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(width, channels, 3, padding=1, padding_mode="replicate")
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, frames: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``frames (B, T_out, C, H, W)``, the input ``x (B, T_in, C, H, W)`` -> refined frames."""
        check_ndim(frames, 5, "frames (B, T_out, C, H, W)", "FrameRefiner")
        b, t, c, h, w = frames.shape
        last = x[:, -1:]
        change = last - x[:, -2:-1] if x.shape[1] > 1 else torch.zeros_like(last)
        cues = torch.cat([frames, last.expand(b, t, c, h, w), change.expand(b, t, c, h, w)], 2)
        delta = self.out(self.body(cues.reshape(b * t, 3 * c, h, w)))
        return frames + delta.reshape(b, t, c, h, w)
