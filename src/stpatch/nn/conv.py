"""Spacetime convolutions and a small multi-stage conv network with a matching decoder.

Layout: every layer here takes PyTorch's native video layout ``(B, C, T, H, W)`` (channels first,
as ``nn.Conv3d``). Convert a token grid ``(B, nT, nH, nW, D)`` with
``einops.rearrange(x, "b t h w d -> b d t h w")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from stpatch.nn._utils import check_ndim, group_count, to_3tuple
from stpatch.nn.block import DropPath

__all__ = [
    "ConvNetOutput",
    "SpacetimeConv",
    "SpacetimeConvBlock",
    "SpacetimeConvDecoder",
    "SpacetimeConvNet",
    "SpacetimeDownsample",
]

CONV_MODES = ("full", "factorized", "causal")


def _same_pad(k: int) -> tuple[int, int]:
    """(left, right) padding that keeps the length for kernel size ``k`` (odd or even)."""
    return (k - 1) // 2, k // 2


class SpacetimeConv(nn.Module):
    """A convolution over time and space, ``(B, C_in, T, H, W) -> (B, C_out, T, H, W)``.

    Sizes are kept ("same" padding, zeros) in every mode.

    Modes:
        ``"full"``: one ``Conv3d`` with a ``kt x kh x kw`` kernel, centred in time.
        ``"factorized"``: (2+1)D, a spatial ``1 x kh x kw`` conv then a temporal ``kt x 1 x 1``
            conv (no non-linearity between them), far fewer weights and FLOPs.
        ``"causal"``: a full ``Conv3d`` whose time axis is padded on the left only (``kt - 1``
            steps), so the output at step ``t`` depends only on inputs at steps ``<= t``:
            ``y[t] = sum_{k=0}^{kt-1} w[kt-1-k] x[t-k]`` (PyTorch's cross-correlation kernel order).

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        kernel: ``(kt, kh, kw)`` or one int.
        mode: ``"full"``, ``"factorized"`` or ``"causal"``.
        groups: channel groups of the convolution(s).
        depthwise: shorthand for ``groups = in_channels`` (``out_channels`` must be a multiple).
        bias: add a bias.

    >>> conv = SpacetimeConv(4, 8, (3, 3, 3), mode="causal")
    >>> conv(torch.zeros(2, 4, 5, 9, 7)).shape
    torch.Size([2, 8, 5, 9, 7])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | Sequence[int] = 3,
        mode: str = "full",
        groups: int = 1,
        depthwise: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if mode not in CONV_MODES:
            raise ValueError(f"SpacetimeConv mode must be one of {CONV_MODES}, got {mode!r}")
        if depthwise:
            groups = in_channels
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel = to_3tuple(kernel, "kernel")
        self.mode = mode
        kt, kh, kw = self.kernel
        if mode == "causal":
            self.time_pad = (kt - 1, 0)
        else:
            self.time_pad = _same_pad(kt)
        self.space_pad = _same_pad(kh) + _same_pad(kw)  # (top, bottom, left, right)
        if mode == "factorized":
            self.spatial = nn.Conv3d(in_channels, out_channels, (1, kh, kw), groups=groups, bias=False)
            self.temporal = nn.Conv3d(out_channels, out_channels, (kt, 1, 1), groups=groups, bias=bias)
        else:
            self.conv = nn.Conv3d(in_channels, out_channels, self.kernel, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_ndim(x, 5, "(B, C, T, H, W)", "SpacetimeConv")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"SpacetimeConv expects C={self.in_channels} on axis 1 of (B, C, T, H, W), got {tuple(x.shape)}"
            )
        top, bottom, left, right = self.space_pad
        if self.mode == "factorized":
            x = self.spatial(F.pad(x, (left, right, top, bottom, 0, 0)))
            return self._temporal(F.pad(x, (0, 0, 0, 0, *self.time_pad)))
        return self.conv(F.pad(x, (left, right, top, bottom, *self.time_pad)))

    def _temporal(self, x: torch.Tensor) -> torch.Tensor:
        """The ``kt x 1 x 1`` conv as a 2-D conv over ``(T, H*W)``: the same weights and result, but PyTorch's
        CPU Conv3d takes a slow path for this kernel (forward + backward on one thread took 1.6x the 2-D form's
        time at 16x16 tokens of 32 channels, 1.1x at 8x8 of 64: ``benchmarks/bench_temporal_conv.py``)."""
        conv = self.temporal
        b, c, t, h, w = x.shape
        y = F.conv2d(x.reshape(b, c, t, h * w), conv.weight.squeeze(-1), conv.bias, groups=conv.groups)
        return y.reshape(b, y.shape[1], y.shape[2], h, w)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel={self.kernel}, mode={self.mode!r}"


class SpacetimeConvBlock(nn.Module):
    """Pre-activation residual block: ``x + conv(act(norm(conv(act(norm(x))))))``.

    ``(B, C, T, H, W) -> (B, C, T, H, W)``. GroupNorm (up to 8 groups) and GELU.
    """

    def __init__(
        self,
        dim: int,
        kernel: int | Sequence[int] = 3,
        mode: str = "factorized",
        depthwise: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(group_count(dim), dim)
        self.conv1 = SpacetimeConv(dim, dim, kernel, mode, depthwise=depthwise)
        self.norm2 = nn.GroupNorm(group_count(dim), dim)
        self.conv2 = SpacetimeConv(dim, dim, kernel, mode, depthwise=depthwise)
        self.act = nn.GELU()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return x + self.drop_path(h)


class SpacetimeDownsample(nn.Module):
    """Strided conv that divides ``(T, H, W)`` by ``factor`` rounding up: ``(B, C_in, T, H, W) -> (B, C_out, ceil(T/ft), ...)``.

    Kernel ``2f - 1`` with padding ``f - 1`` per axis, so any size works (no divisibility needed).
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int | Sequence[int] = (1, 2, 2)) -> None:
        super().__init__()
        self.factor = to_3tuple(factor, "factor")
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            kernel_size=tuple(2 * f - 1 for f in self.factor),
            stride=self.factor,
            padding=tuple(f - 1 for f in self.factor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConvNetOutput(NamedTuple):
    """What :class:`SpacetimeConvNet` returns.

    Attributes:
        features: ``(B, dims[-1], T', H', W')`` global features at the coarsest stage (after fusion).
        skips: per earlier stage ``i``, ``(B, dims[i], T_i, H_i, W_i)``, finest first.
    """

    features: torch.Tensor
    skips: list[torch.Tensor]


class SpacetimeConvNet(nn.Module):
    """Multi-stage spacetime conv network: local blocks, downsampling, then fusion into global features.

    Stage 0 works at the input resolution with ``dims[0]`` channels; each further stage first
    downsamples by ``downsample`` (default: space by 2, time kept) and widens to ``dims[i]``.
    With ``fuse=True`` every stage's output is average-pooled to the coarsest resolution,
    projected to ``dims[-1]`` and added to it, so the returned features mix all scales.

    Args:
        in_channels: ``C_in`` (a 1x1x1 stem maps it to ``dims[0]`` if they differ).
        dims: channels per stage.
        depths: residual blocks per stage (one int for all).
        kernel, mode, depthwise: passed to :class:`SpacetimeConv`.
        downsample: ``(ft, fh, fw)`` between stages.
        fuse: add the multi-scale fusion.
        drop_path: stochastic depth of the residual blocks.

    Shapes:
        ``forward(x: (B, C_in, T, H, W)) -> ConvNetOutput(features (B, dims[-1], T', H', W'), skips)``
        where ``H' = ceil(H / fh**(len(dims)-1))`` etc.

    >>> net = SpacetimeConvNet(3, dims=(8, 16))
    >>> out = net(torch.zeros(1, 3, 4, 9, 9))
    >>> tuple(out.features.shape), [tuple(s.shape) for s in out.skips]
    ((1, 16, 4, 5, 5), [(1, 8, 4, 9, 9)])
    """

    def __init__(
        self,
        in_channels: int,
        dims: Sequence[int] = (64, 128),
        depths: int | Sequence[int] = 1,
        kernel: int | Sequence[int] = 3,
        mode: str = "factorized",
        depthwise: bool = False,
        downsample: int | Sequence[int] = (1, 2, 2),
        fuse: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.dims = tuple(int(d) for d in dims)
        if not self.dims:
            raise ValueError("SpacetimeConvNet needs at least one stage in dims")
        depths = (int(depths),) * len(self.dims) if isinstance(depths, int) else tuple(depths)
        if len(depths) != len(self.dims):
            raise ValueError(f"depths {depths} and dims {self.dims} must have the same length")
        self.in_channels = in_channels
        self.stem = nn.Conv3d(in_channels, self.dims[0], 1) if in_channels != self.dims[0] else nn.Identity()
        self.downs = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(self.dims, depths)):
            self.downs.append(nn.Identity() if i == 0 else SpacetimeDownsample(self.dims[i - 1], dim, downsample))
            self.stages.append(
                nn.Sequential(*[SpacetimeConvBlock(dim, kernel, mode, depthwise, drop_path) for _ in range(depth)])
            )
        self.fuse = nn.ModuleList(nn.Conv3d(d, self.dims[-1], 1) for d in self.dims[:-1]) if fuse else None

    def forward(self, x: torch.Tensor) -> ConvNetOutput:
        check_ndim(x, 5, "(B, C, T, H, W)", "SpacetimeConvNet")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"SpacetimeConvNet expects C={self.in_channels} on axis 1 of (B, C, T, H, W), got {tuple(x.shape)}"
            )
        x = self.stem(x)
        outs = []
        for down, stage in zip(self.downs, self.stages):
            x = stage(down(x))
            outs.append(x)
        features = outs[-1]
        if self.fuse is not None:
            size = features.shape[2:]
            for proj, skip in zip(self.fuse, outs[:-1]):
                features = features + proj(F.adaptive_avg_pool3d(skip, size))
        return ConvNetOutput(features, outs[:-1])


class SpacetimeConvDecoder(nn.Module):
    """Go back up the stages of a :class:`SpacetimeConvNet`, merging its skip features.

    At each stage (coarsest first) the features are upsampled (nearest) to the skip's size,
    concatenated with it, projected to the skip's channels and refined by residual blocks.

    Shapes:
        ``forward(features (B, dims[-1], ...), skips [(B, dims[i], T_i, H_i, W_i)]) -> (B, dims[0], T_0, H_0, W_0)``.
    """

    def __init__(
        self,
        dims: Sequence[int] = (64, 128),
        depths: int = 1,
        kernel: int | Sequence[int] = 3,
        mode: str = "factorized",
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        self.dims = tuple(int(d) for d in dims)
        self.merge = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for i in range(len(self.dims) - 1, 0, -1):
            self.merge.append(nn.Conv3d(self.dims[i] + self.dims[i - 1], self.dims[i - 1], 1))
            self.blocks.append(
                nn.Sequential(*[SpacetimeConvBlock(self.dims[i - 1], kernel, mode, depthwise) for _ in range(depths)])
            )

    def forward(self, features: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(skips) != len(self.merge):
            raise ValueError(f"SpacetimeConvDecoder expects {len(self.merge)} skip tensors, got {len(skips)}")
        x = features
        for merge, block, skip in zip(self.merge, self.blocks, reversed(skips)):
            up = F.interpolate(x, size=skip.shape[2:], mode="nearest")
            x = block(merge(torch.cat([up, skip], dim=1)))
        return x
