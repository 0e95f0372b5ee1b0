"""STPNet: the spacetime patch forecaster, and its attention-only / conv-only ablations.

::

    x (B, T_in, C, H, W)
      -> PatchEmbed (tubelets pt x ph x pw, end-padded)           tokens (B, nT, nH, nW, d0)
      -> SpacetimeConvNet (local blocks, downsample space by 2 per stage, multi-scale fusion)
      -> position + SpacetimeBlocks (window attention; a window that covers the grid is joint)
      -> SpacetimeConvDecoder (back up to the token grid with the skip features)
      -> PatchHead (flatten time tokens, predict all T_out frames per patch, crop)
      -> + last input frame (residual=True)                        (B, T_out, C, H, W)

Defaults (= ``stpnet`` = ``stpnet_tiny``): patch (2, 4, 4), dims (32, 64), one conv block per
stage, 2 attention blocks of 2 heads, ~0.27 M parameters. On 64x64 moving digits (10 -> 10) on
2 CPU cores it beat the larger ``stpnet_small`` at equal wall time (2 and 5 minutes of training),
and residual=True beat residual=False.

The window ``(8, 8, 8)`` is clamped to the token grid, so on small grids (64x64 input,
patch 4, one downsampling: 8x8 attention tokens) the attention is joint, and on large grids
it is local, shifted on every other block.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from stpatch.models._common import check_grid
from stpatch.models.registry import register_model
from stpatch.nn._utils import ceil_div, to_3tuple
from stpatch.nn.block import SpacetimeBlock
from stpatch.nn.conv import SpacetimeConvDecoder, SpacetimeConvNet
from stpatch.nn.embed import PatchEmbed
from stpatch.nn.heads import FrameRefiner, PatchHead
from stpatch.nn.position import LearnedPosition3d, SinCosPosition3d

__all__ = ["STPNet", "stpconv", "stpformer", "stpnet", "stpnet_base", "stpnet_small", "stpnet_tiny"]


class STPNet(nn.Module):
    """Spacetime patch network: ``(B, T_in, C, H, W) -> (B, T_out, C_out, H, W)`` for any ``H, W``.

    Args:
        in_channels, t_in, t_out: input channels, input and output steps.
        out_channels: defaults to ``in_channels``.
        patch: tubelet ``(pt, ph, pw)``.
        dims: channels of the conv stages; ``dims[0]`` is the embedding size and ``dims[-1]`` the
            attention size. Each stage after the first halves the token grid in space.
        conv_depths: residual conv blocks per stage (encoder) and per decoder stage.
        conv_mode: ``"factorized"`` (2+1)D, ``"full"`` 3-D or ``"causal"`` convolutions.
        kernel: conv kernel ``(kt, kh, kw)``.
        use_conv: ``False`` drops the conv network (and decoder): attention on the token grid.
        attn_depth: transformer blocks (0: conv only).
        heads: attention heads.
        attention: ``"window"`` (default), ``"joint"``, ``"divided"`` or ``"axial"``.
        window: cuboid of the window attention, clamped to the grid; shifted on odd blocks.
        mlp_ratio: MLP width of the blocks.
        position: ``"sincos"``, ``"learned"`` or ``"none"``, added before the attention blocks.
        residual: forecast = last input frame + predicted change (the head starts at zero, so an
            untrained model is persistence). The general form is ``base=`` (any base forecast, see
            :mod:`stpatch.models.base_forecast`); ``base="persistence"`` is the same forecast.
        pad_mode: how the patch embedding pads non-divisible sizes.
        drop_path: stochastic depth (linearly increasing over the blocks).
        layer_scale: initial per-channel scale of each attention block's branches (0: none; e.g.
            0.01 starts the blocks almost as the identity, so the network starts as its conv part).
        use_tod: condition on the time of day: ``forward(x, tod)`` with ``tod (B, T_in)`` in
            ``[0, 1)`` adds ``Linear(sin/cos of 2 daily harmonics)`` to the tokens of each time slice.
        head_kernel: spatial extent of the patch head on the token grid (1: each patch on its own,
            3: reads the neighbouring tokens too, see :class:`~stpatch.nn.heads.PatchHead`).
        refine: width of a full-resolution :class:`~stpatch.nn.heads.FrameRefiner` after the head
            (0: none).
        checkpointing: recompute the conv network, each attention block and the decoder in the
            backward pass instead of keeping their activations (``torch.utils.checkpoint``,
            non-reentrant): less memory on large grids for about one more forward pass of compute.
            Training only; the outputs and gradients are the same.
    """

    kind = "grid"

    def __init__(
        self,
        in_channels: int = 1,
        t_in: int = 10,
        t_out: int = 10,
        out_channels: int | None = None,
        patch: int | Sequence[int] = (2, 4, 4),
        dims: Sequence[int] = (32, 64),
        conv_depths: int = 1,
        conv_mode: str = "factorized",
        kernel: int | Sequence[int] = 3,
        use_conv: bool = True,
        attn_depth: int = 2,
        heads: int = 2,
        attention: str = "window",
        window: int | Sequence[int] = (8, 8, 8),
        mlp_ratio: float = 2.0,
        position: str = "sincos",
        residual: bool = True,
        pad_mode: str = "replicate",
        drop_path: float = 0.0,
        layer_scale: float = 0.0,
        use_tod: bool = False,
        head_kernel: int = 1,
        refine: int = 0,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.t_in, self.t_out = int(in_channels), int(t_in), int(t_out)
        self.out_channels = int(out_channels or in_channels)
        if residual and self.out_channels != self.in_channels:
            raise ValueError(f"residual=True needs out_channels == in_channels, got {out_channels} != {in_channels}")
        self.residual = residual
        self.checkpointing = bool(checkpointing)
        self.patch = to_3tuple(patch, "patch")
        dims = tuple(int(d) for d in dims)
        if not use_conv:
            dims = dims[-1:]
        if not use_conv and attn_depth == 0:
            raise ValueError("STPNet needs use_conv=True or attn_depth > 0")
        if position not in ("sincos", "learned", "none"):
            raise ValueError(f"position must be 'sincos', 'learned' or 'none', got {position!r}")
        self.dims = dims
        t_tokens = ceil_div(self.t_in, self.patch[0])

        self.embed = PatchEmbed(self.in_channels, dims[0], self.patch, pad_mode)
        self.tod_embed = nn.Linear(4, dims[0]) if use_tod else None
        self.convnet = SpacetimeConvNet(dims[0], dims, conv_depths, kernel, conv_mode) if use_conv else None
        if attn_depth > 0:
            if position == "sincos":
                self.position: nn.Module = SinCosPosition3d(dims[-1])
            elif position == "learned":
                self.position = LearnedPosition3d(dims[-1], (t_tokens, 8, 8))
            else:
                self.position = nn.Identity()
            rates = torch.linspace(0, drop_path, attn_depth).tolist()
            self.blocks = nn.ModuleList(
                SpacetimeBlock(dims[-1], heads, attention, window, shift=i % 2 == 1, mlp_ratio=mlp_ratio, drop_path=r,
                               layer_scale=layer_scale)
                for i, r in enumerate(rates)
            )
            self.norm = nn.LayerNorm(dims[-1])
        else:
            self.position, self.blocks, self.norm = nn.Identity(), nn.ModuleList(), nn.Identity()
        self.decoder = SpacetimeConvDecoder(dims, conv_depths, kernel, conv_mode) if use_conv and len(dims) > 1 else None
        self.head = PatchHead(dims[0], self.out_channels, self.t_out, self.patch, t_tokens, zero_init=residual,
                              kernel=head_kernel)
        self.refiner = FrameRefiner(self.out_channels, int(refine)) if refine else None
        if self.refiner is not None and self.out_channels != self.in_channels:
            raise ValueError(f"refine needs out_channels == in_channels (it reads the input frames), "
                             f"got {self.out_channels} != {self.in_channels}")

    @property
    def output_layer(self) -> nn.Module:
        """The last projection (zeroed when the model stands on a base forecast)."""
        return self.head.proj

    def forward_features(self, x: torch.Tensor, tod: torch.Tensor | None = None) -> torch.Tensor:
        """Token features after the attention blocks, ``(B, nT, nH', nW', dims[-1])`` (``nH'``: after downsampling)."""
        return self._encode(x, tod)[0]

    def _time_of_day(self, tod: torch.Tensor, n_t: int) -> torch.Tensor:
        """``(B, T_in)`` -> ``(B, nT, 1, 1, dims[0])``: daily harmonics, averaged within each time slice."""
        b, pt = tod.shape[0], self.patch[0]
        if tod.shape != (b, self.t_in):
            raise ValueError(f"tod must be (B, T_in) = ({b}, {self.t_in}), got {tuple(tod.shape)}")
        angle = 2 * torch.pi * tod.float()
        feats = torch.stack([angle.sin(), angle.cos(), (2 * angle).sin(), (2 * angle).cos()], -1)  # (B, T_in, 4)
        pad = n_t * pt - self.t_in
        if pad:
            feats = torch.cat([feats, feats[:, -1:].expand(b, pad, 4)], 1)
        return self.tod_embed(feats.reshape(b, n_t, pt, 4).mean(2))[:, :, None, None]

    def _segment(self, module: nn.Module, *args: Any) -> Any:
        """``module(*args)``; with ``checkpointing``, its activations are recomputed in the backward pass.

        Only while training with gradients: inference and attention capture run each module once.
        """
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def _encode(self, x: torch.Tensor, tod: torch.Tensor | None = None):
        check_grid(x, type(self).__name__, self.in_channels, self.t_in)
        tokens, grid = self.embed(x)
        if self.tod_embed is not None:
            tokens = tokens + (self._time_of_day(tod, tokens.shape[1]) if tod is not None else 0.0 * self.tod_embed.bias)
        h = rearrange(tokens, "b t h w d -> b d t h w")
        skips: list[torch.Tensor] = []
        if self.convnet is not None:
            h, skips = self._segment(self.convnet, h)
        z = rearrange(h, "b d t h w -> b t h w d")
        if len(self.blocks):
            z = self.position(z)
            for block in self.blocks:
                z = self._segment(block, z)
            z = self.norm(z)
        return z, skips, grid

    def forward(self, x: torch.Tensor, tod: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T_in, C, H, W) -> (B, T_out, C_out, H, W)``; ``tod (B, T_in)`` is used with ``use_tod``."""
        z, skips, grid = self._encode(x, tod)
        if self.decoder is not None:
            z = rearrange(self._segment(self.decoder, rearrange(z, "b t h w d -> b d t h w"), skips),
                          "b d t h w -> b t h w d")
        out = self.head(z, grid)
        if self.residual:
            out = out + x[:, -1:]
        return out if self.refiner is None else self.refiner(out, x)


# --------------------------------------------------------------------------- presets

_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(dims=(32, 64), conv_depths=1, attn_depth=2, heads=2),
    "small": dict(dims=(64, 128), conv_depths=1, attn_depth=2, heads=4),
    "base": dict(dims=(96, 192), conv_depths=2, attn_depth=4, heads=6),
}


def _build(preset: dict[str, Any], kwargs: dict[str, Any]) -> STPNet:
    return STPNet(**{**preset, **kwargs})


@register_model("stpnet", kind="grid")
def stpnet(**kwargs: Any) -> STPNet:
    """STPNet with the class defaults (= ``stpnet_tiny``): patch (2,4,4), dims (32,64), 2 attention blocks."""
    return STPNet(**kwargs)


@register_model("stpnet_tiny", kind="grid")
def stpnet_tiny(**kwargs: Any) -> STPNet:
    """STPNet tiny: dims (32,64), 2 attention blocks of 2 heads."""
    return _build(_PRESETS["tiny"], kwargs)


@register_model("stpnet_small", kind="grid")
def stpnet_small(**kwargs: Any) -> STPNet:
    """STPNet small: dims (64,128), 2 attention blocks of 4 heads."""
    return _build(_PRESETS["small"], kwargs)


@register_model("stpnet_base", kind="grid")
def stpnet_base(**kwargs: Any) -> STPNet:
    """STPNet base: dims (96,192), 2 conv blocks per stage, 4 attention blocks of 6 heads."""
    return _build(_PRESETS["base"], kwargs)


@register_model("stpformer", kind="grid")
def stpformer(**kwargs: Any) -> STPNet:
    """Attention only (ablation): patch embed, 4 window attention blocks of dim 64 on the token grid, head."""
    return _build(dict(use_conv=False, dims=(64,), attn_depth=4, heads=2), kwargs)


@register_model("stpconv", kind="grid")
def stpconv(**kwargs: Any) -> STPNet:
    """Convolution only (ablation): patch embed, conv net dims (32,64) with 2 blocks per stage, decoder, head."""
    return _build(dict(dims=(32, 64), conv_depths=2, attn_depth=0), kwargs)


# the presets take exactly STPNet's options; saying so lets a config typo (model.dimm) fail when the
# config is read instead of when the model is built (engine/config.py checks options by signature)
for _factory in (stpnet, stpnet_tiny, stpnet_small, stpnet_base, stpformer, stpconv):
    _factory.__signature__ = inspect.signature(STPNet)
