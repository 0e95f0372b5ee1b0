"""Spacetime patches: split time into slices and space into regions, joined into tubelets.

Grids ``(B, T, C, H, W)`` become tokens ``(B, nT, nH, nW, C*pt*ph*pw)``; sensor networks
``(B, T, N, C)`` become tokens ``(B, nT, G, pt*k*C)`` over ``G`` spatial groups of ``k`` sensors.
Every function here accepts torch tensors (any device, differentiable) and NumPy arrays, and
returns the same kind it was given. Each patchify returns a small record that carries all that
its inverse needs, so ``unpatchify(*patchify(x))`` gives back ``x`` exactly.

Token features are ordered ``(C, pt, ph, pw)``: channel slowest, width fastest.

>>> import numpy as np
>>> x = np.arange(2 * 4 * 1 * 6 * 6, dtype=np.float32).reshape(2, 4, 1, 6, 6)
>>> tokens, grid = patchify(x, (2, 3, 3))
>>> tokens.shape
(2, 2, 2, 2, 18)
>>> bool((unpatchify(tokens, grid) == x).all())
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray]
PadMode = Literal["zeros", "replicate", "reflect", "none"]
PAD_MODES = ("zeros", "replicate", "reflect", "none")

__all__ = [
    "PatchGrid",
    "SensorGroups",
    "SensorPatchGrid",
    "group_sensors",
    "patchify",
    "patchify_sensors",
    "time_space_partition",
    "time_space_merge",
    "unpatchify",
    "unpatchify_sensors",
]


# --------------------------------------------------------------------------- helpers


def _to_torch(x: ArrayLike) -> tuple[torch.Tensor, bool]:
    """Return ``(tensor, was_numpy)``; NumPy arrays are wrapped without a copy where possible."""
    if isinstance(x, torch.Tensor):
        return x, False
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)), True
    raise TypeError(f"expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _back(x: torch.Tensor, was_numpy: bool) -> ArrayLike:
    return x.numpy() if was_numpy else x


def _triple(value: int | tuple[int, ...] | None, name: str, n: int = 3) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{name} must have {n} entries (pt, ph, pw), got {value}")
    if any(v <= 0 for v in value):
        raise ValueError(f"{name} sizes must be positive, got {value}")
    return value


def _check_pad(pad: str) -> None:
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")


def _padded_length(n: int, patch: int, stride: int, pad: str, axis: str) -> int:
    """Smallest length >= n that a patch/stride tiling covers exactly."""
    if stride > patch:
        raise ValueError(
            f"stride {stride} is larger than patch {patch} along {axis}: inputs between patches "
            "would be dropped and could not be restored; use stride <= patch"
        )
    steps = math.ceil(max(n - patch, 0) / stride)
    length = patch + steps * stride
    if length != n and pad == "none":
        if patch > n:
            raise ValueError(
                f"patch {patch} is larger than the input size {n} along {axis} and pad='none'; "
                "pass pad='zeros', 'replicate' or 'reflect', or use a smaller patch"
            )
        raise ValueError(
            f"size {n} along {axis} is not tiled exactly by patch {patch} with stride {stride} "
            f"(the next size that is: {length}) and pad='none'; pass pad='zeros', 'replicate' or "
            "'reflect', or choose a size that divides"
        )
    return length


def _source_index(n: int, length: int, mode: str, device: torch.device) -> torch.Tensor:
    """Index into an axis of size ``n`` for each of ``length`` padded positions (end padding)."""
    i = torch.arange(length, device=device)
    if mode == "replicate" or n == 1:
        return i.clamp(max=n - 1)
    # reflect without repeating the edge, periodic with period 2(n-1) so any pad size works
    period = 2 * (n - 1)
    i = i % period
    return torch.where(i < n, i, period - i)


def _pad_end(x: torch.Tensor, dims: tuple[int, ...], lengths: tuple[int, ...], mode: str) -> torch.Tensor:
    """Pad ``x`` at the end of each axis in ``dims`` to ``lengths`` with ``mode``."""
    for dim, length in zip(dims, lengths):
        n = x.shape[dim]
        if length == n:
            continue
        if mode == "zeros":
            shape = list(x.shape)
            shape[dim] = length - n
            x = torch.cat([x, x.new_zeros(shape)], dim=dim)
        else:
            x = x.index_select(dim, _source_index(n, length, mode, x.device))
    return x


# --------------------------------------------------------------------------- grids


@dataclass(frozen=True)
class PatchGrid:
    """What :func:`unpatchify` needs to rebuild ``(B, T, C, H, W)`` from tokens.

    Attributes:
        size: original ``(T, H, W)``.
        channels: ``C``.
        patch: ``(pt, ph, pw)``.
        stride: ``(st, sh, sw)``; equal to ``patch`` for non-overlapping tubelets.
        padded: ``(Tp, Hp, Wp)`` after end padding.
        num_patches: ``(nT, nH, nW)``.
        pad: the pad mode used.
        flat: whether tokens were returned as ``(B, nT*nH*nW, D)``.
    """

    size: tuple[int, int, int]
    channels: int
    patch: tuple[int, int, int]
    stride: tuple[int, int, int]
    padded: tuple[int, int, int]
    num_patches: tuple[int, int, int]
    pad: str
    flat: bool = False

    @property
    def token_dim(self) -> int:
        """Features per token, ``C * pt * ph * pw``."""
        return self.channels * math.prod(self.patch)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.num_patches)

    @property
    def overlapping(self) -> bool:
        return self.stride != self.patch


def patchify(
    x: ArrayLike,
    patch: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    pad: PadMode = "zeros",
    flatten: bool = False,
) -> tuple[ArrayLike, PatchGrid]:
    """Split a grid sequence into spacetime patches (tubelets).

    Args:
        x: ``(B, T, C, H, W)`` tensor or array (a 4-D ``(T, C, H, W)`` input is an error: add the
            batch axis with ``x[None]``).
        patch: ``(pt, ph, pw)``, or one int for all three.
        stride: ``(st, sh, sw)`` with each ``<= patch``; ``None`` means ``stride = patch``
            (non-overlapping, done by a reshape and permute). ``stride < patch`` overlaps.
        pad: how sizes that the tiling does not cover are padded at the end: ``"zeros"``,
            ``"replicate"``, ``"reflect"``, or ``"none"`` to require an exact tiling.
        flatten: return tokens ``(B, nT*nH*nW, D)`` instead of ``(B, nT, nH, nW, D)``.

    Returns:
        ``(tokens, grid)``: tokens ``(B, nT, nH, nW, C*pt*ph*pw)`` with features ordered
        ``(C, pt, ph, pw)``, of the same kind (torch/NumPy) as ``x``; and the :class:`PatchGrid`.

    Token ``[b, i, j, k]`` holds ``x[b, i*st:i*st+pt, :, j*sh:j*sh+ph, k*sw:k*sw+pw]`` (of the padded
    input), moved so that channels come first.
    """
    xt, was_numpy = _to_torch(x)
    if xt.ndim != 5:
        raise ValueError(
            f"patchify expects a grid (B, T, C, H, W) with 5 dims, got shape {tuple(xt.shape)}; "
            "add a batch axis with x[None] or use patchify_sensors for (B, T, N, C)"
        )
    _check_pad(pad)
    patch = _triple(patch, "patch")
    stride = _triple(stride, "stride") or patch
    b, t, c, h, w = xt.shape
    padded = tuple(
        _padded_length(n, p, s, pad, axis)
        for n, p, s, axis in zip((t, h, w), patch, stride, ("time", "height", "width"))
    )
    num = tuple((n - p) // s + 1 for n, p, s in zip(padded, patch, stride))
    grid = PatchGrid((t, h, w), c, patch, stride, padded, num, pad, flatten)

    xt = _pad_end(xt, (1, 3, 4), padded, pad)
    (pt, ph, pw), (nt, nh, nw) = patch, num
    if stride == patch:
        tokens = xt.reshape(b, nt, pt, c, nh, ph, nw, pw).permute(0, 1, 4, 6, 3, 2, 5, 7)
    else:
        # unfold adds the window axes at the end: (B, nT, C, nH, nW, pt, ph, pw)
        tokens = xt.unfold(1, pt, stride[0]).unfold(3, ph, stride[1]).unfold(4, pw, stride[2])
        tokens = tokens.permute(0, 1, 3, 4, 2, 5, 6, 7)
    tokens = tokens.reshape(b, nt, nh, nw, grid.token_dim)
    if flatten:
        tokens = tokens.reshape(b, grid.num_tokens, grid.token_dim)
    return _back(tokens, was_numpy), grid


def _fold_index(grid: PatchGrid, device: torch.device) -> torch.Tensor:
    """Flat position in the padded ``(Tp, Hp, Wp)`` volume of every token element.

    Shape ``(nT, nH, nW, pt, ph, pw)``, flattened; used to scatter-add overlapping tubelets.
    """
    axes = []
    for n, p, s in zip(grid.num_patches, grid.patch, grid.stride):
        axes.append(torch.arange(n, device=device)[:, None] * s + torch.arange(p, device=device)[None, :])
    (it, ih, iw), (_, hp, wp) = axes, grid.padded
    # broadcast to (nT, nH, nW, pt, ph, pw)
    t_idx = it[:, None, None, :, None, None]
    h_idx = ih[None, :, None, None, :, None]
    w_idx = iw[None, None, :, None, None, :]
    return ((t_idx * hp + h_idx) * wp + w_idx).reshape(-1)


def unpatchify(tokens: ArrayLike, grid: PatchGrid) -> ArrayLike:
    """Invert :func:`patchify`: tokens back to ``(B, T, C, H, W)``, cropping the padding.

    Args:
        tokens: ``(B, nT, nH, nW, D)`` or, when ``grid.flat``, ``(B, nT*nH*nW, D)``, with
            ``D = C*pt*ph*pw`` (more generally any per-token features laid out like patchify's).
        grid: the :class:`PatchGrid` returned by :func:`patchify`.

    Returns:
        ``(B, T, C, H, W)``. Where tubelets overlap (``stride < patch``) the overlapping values
        are averaged, so ``unpatchify(*patchify(x, ...))`` returns ``x`` in every mode.
    """
    tt, was_numpy = _to_torch(tokens)
    nt, nh, nw = grid.num_patches
    pt, ph, pw = grid.patch
    c = grid.channels
    expected = (grid.num_tokens, grid.token_dim) if grid.flat else (nt, nh, nw, grid.token_dim)
    if tt.ndim != len(expected) + 1 or tuple(tt.shape[1:]) != expected:
        raise ValueError(
            f"unpatchify expects tokens (B, {', '.join(map(str, expected))}) for this PatchGrid, "
            f"got shape {tuple(tt.shape)}; pass the grid returned with these tokens"
        )
    b = tt.shape[0]
    tt = tt.reshape(b, nt, nh, nw, c, pt, ph, pw)
    tp, hp, wp = grid.padded
    if grid.stride == grid.patch:
        out = tt.permute(0, 1, 5, 4, 2, 6, 3, 7).reshape(b, tp, c, hp, wp)
    else:
        index = _fold_index(grid, tt.device)
        vals = tt.permute(0, 4, 1, 2, 3, 5, 6, 7).reshape(b, c, -1)
        volume = tp * hp * wp
        summed = vals.new_zeros(b, c, volume).index_add_(2, index, vals)
        counts = torch.zeros(volume, dtype=vals.dtype, device=vals.device)
        counts.index_add_(0, index, torch.ones_like(index, dtype=vals.dtype))
        out = (summed / counts).reshape(b, c, tp, hp, wp).permute(0, 2, 1, 3, 4)
    t, h, w = grid.size
    out = out[:, :t, :, :h, :w]
    return _back(out.contiguous() if was_numpy else out, was_numpy)


# --------------------------------------------------------------------------- the classic interface


def time_space_partition(
    data: ArrayLike, time_length: int, space_length: int, pad: PadMode = "zeros"
) -> ArrayLike:
    """Partition a plain ``(T, S)`` or ``(T, S, ...)`` array into time-space blocks.

    Time is cut into slices of ``time_length`` steps and the space axis into runs of
    ``space_length`` locations; trailing axes are carried along.

    Args:
        data: ``(T, S, ...)`` array or tensor.
        time_length, space_length: block sizes, positive. ``T`` and ``S`` are padded at the end
            (``pad`` as in :func:`patchify`; ``"none"`` requires exact division).

    Returns:
        ``(nT, nS, time_length, space_length, ...)`` with block ``[i, j]`` equal to
        ``data[i*time_length:(i+1)*time_length, j*space_length:(j+1)*space_length]``.

    >>> import numpy as np
    >>> time_space_partition(np.arange(12).reshape(4, 3), 2, 2).shape
    (2, 2, 2, 2)
    """
    xt, was_numpy = _to_torch(data)
    if xt.ndim < 2:
        raise ValueError(f"time_space_partition expects (T, S, ...) with at least 2 dims, got shape {tuple(xt.shape)}")
    _check_pad(pad)
    tl, sl = _triple((time_length, space_length), "block size", n=2)
    t, s = xt.shape[:2]
    tp = _padded_length(t, tl, tl, pad, "time")
    sp = _padded_length(s, sl, sl, pad, "space")
    xt = _pad_end(xt, (0, 1), (tp, sp), pad)
    rest = tuple(xt.shape[2:])
    blocks = xt.reshape(tp // tl, tl, sp // sl, sl, *rest).transpose(1, 2)
    return _back(blocks.contiguous() if was_numpy else blocks, was_numpy)


def time_space_merge(blocks: ArrayLike, time_size: int, space_size: int) -> ArrayLike:
    """Invert :func:`time_space_partition`: ``(nT, nS, tl, sl, ...) -> (T, S, ...)``, cropping padding."""
    bt, was_numpy = _to_torch(blocks)
    if bt.ndim < 4:
        raise ValueError(f"time_space_merge expects (nT, nS, tl, sl, ...), got shape {tuple(bt.shape)}")
    nt, ns, tl, sl = bt.shape[:4]
    if time_size > nt * tl or space_size > ns * sl:
        raise ValueError(f"blocks cover ({nt * tl}, {ns * sl}), smaller than the requested ({time_size}, {space_size})")
    out = bt.transpose(1, 2).reshape(nt * tl, ns * sl, *bt.shape[4:])[:time_size, :space_size]
    return _back(out.contiguous() if was_numpy else out, was_numpy)


# sensor networks live in their own module; imported last because it uses the helpers above
from stpatch.sensor_patches import (  # noqa: E402
    SensorGroups,
    SensorPatchGrid,
    group_sensors,
    patchify_sensors,
    unpatchify_sensors,
)
