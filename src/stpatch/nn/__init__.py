"""Layers for spacetime patches, each usable on its own.

Layouts: grids ``(B, T, C, H, W)``; token grids ``(B, nT, nH, nW, D)``; convolution layers take
``(B, C, T, H, W)`` (PyTorch's video layout).

* :class:`PatchEmbed` / :class:`PatchHead`: frames to tokens and back (padding, cropping).
* :class:`LearnedPosition3d`, :class:`SinCosPosition3d`: positions for any grid size.
* :class:`SpacetimeConv`, :class:`SpacetimeConvBlock`, :class:`SpacetimeConvNet`,
  :class:`SpacetimeConvDecoder`: local spacetime dependencies and multi-scale fusion.
* :class:`SpacetimeAttention`, :class:`SpacetimeBlock`: cuboid attention (joint, divided,
  axial, window); :func:`capture_attention` (scoped to one model and thread) and
  :func:`attention_importance` for maps.
"""

from stpatch.nn.attention import (
    ATTENTION_MODES,
    AttentionCapture,
    AttentionMap,
    CuboidAttention,
    CuboidLayout,
    SpacetimeAttention,
    attention_importance,
    capture_attention,
    cuboid_layout,
    cuboid_passes,
)
from stpatch.nn.block import DropPath, Mlp, SpacetimeBlock
from stpatch.nn.conv import (
    ConvNetOutput,
    SpacetimeConv,
    SpacetimeConvBlock,
    SpacetimeConvDecoder,
    SpacetimeConvNet,
    SpacetimeDownsample,
)
from stpatch.nn.embed import PatchEmbed, pad_to_patch
from stpatch.nn.heads import PatchHead
from stpatch.nn.position import LearnedPosition3d, SinCosPosition3d, sincos_1d

__all__ = [
    "ATTENTION_MODES",
    "AttentionCapture",
    "AttentionMap",
    "ConvNetOutput",
    "CuboidAttention",
    "CuboidLayout",
    "DropPath",
    "LearnedPosition3d",
    "Mlp",
    "PatchEmbed",
    "PatchHead",
    "SinCosPosition3d",
    "SpacetimeAttention",
    "SpacetimeBlock",
    "SpacetimeConv",
    "SpacetimeConvBlock",
    "SpacetimeConvDecoder",
    "SpacetimeConvNet",
    "SpacetimeDownsample",
    "attention_importance",
    "capture_attention",
    "cuboid_layout",
    "cuboid_passes",
    "pad_to_patch",
    "sincos_1d",
]
