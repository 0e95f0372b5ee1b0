"""Heads: from a token grid back to frames."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from stpatch.nn._utils import check_ndim, to_3tuple
from stpatch.patches import PatchGrid

__all__ = ["PatchHead"]


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
    ) -> None:
        super().__init__()
        self.patch = to_3tuple(patch, "patch")
        self.out_channels = out_channels
        self.t_out = int(t_out)
        self.t_tokens = t_tokens
        pt, ph, pw = self.patch
        self.norm = nn.LayerNorm(dim)
        if t_tokens is None:
            self.proj = nn.Linear(dim, pt * ph * pw * out_channels)
        else:
            self.proj = nn.Linear(t_tokens * dim, self.t_out * ph * pw * out_channels)
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
            x = self.proj(rearrange(x, "b nt nh nw d -> b nh nw (nt d)"))
            out = rearrange(
                x, "b nh nw (t c ph pw) -> b t c (nh ph) (nw pw)", t=self.t_out, c=self.out_channels, ph=ph, pw=pw
            )
        return out[:, : self.t_out, :, :h, :w]

    def extra_repr(self) -> str:
        return f"patch={self.patch}, t_out={self.t_out}, t_tokens={self.t_tokens}"
