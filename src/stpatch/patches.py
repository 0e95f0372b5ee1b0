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


# --------------------------------------------------------------------------- sensor networks


@dataclass(frozen=True)
class SensorGroups:
    """A split of ``N`` sensors into ``G`` spatial regions of at most ``k`` sensors each.

    Attributes:
        num_nodes: ``N``.
        group_size: ``k``, slots per group.
        perm: ``(G*k,)`` long tensor; slot ``g*k + j`` holds sensor ``perm[g*k + j]``. Padding slots
            (where ``mask`` is False) repeat sensor 0 and are zeroed by :meth:`to_groups`.
        mask: ``(G, k)`` bool tensor, True where a slot holds a real sensor.
    """

    num_nodes: int
    group_size: int
    perm: torch.Tensor
    mask: torch.Tensor

    @property
    def num_groups(self) -> int:
        return self.mask.shape[0]

    @property
    def inverse(self) -> torch.Tensor:
        """``(N,)``: the slot that holds each sensor."""
        slots = torch.nonzero(self.mask.reshape(-1), as_tuple=True)[0]
        inv = torch.empty(self.num_nodes, dtype=torch.long)
        inv[self.perm[slots]] = slots
        return inv

    def to_groups(self, x: ArrayLike) -> ArrayLike:
        """``(B, T, N, C) -> (B, T, G, k, C)``, zeros in padding slots."""
        xt, was_numpy = _to_torch(x)
        _check_sensor_input(xt, self.num_nodes)
        g, k = self.mask.shape
        out = xt.index_select(2, self.perm.to(xt.device))
        out = out.reshape(*xt.shape[:2], g, k, xt.shape[3])
        out = out * self.mask.to(device=xt.device, dtype=xt.dtype)[:, :, None]
        return _back(out, was_numpy)

    def from_groups(self, xg: ArrayLike) -> ArrayLike:
        """``(B, T, G, k, C) -> (B, T, N, C)``: the exact inverse of :meth:`to_groups`."""
        xt, was_numpy = _to_torch(xg)
        g, k = self.mask.shape
        if xt.ndim != 5 or tuple(xt.shape[2:4]) != (g, k):
            raise ValueError(f"from_groups expects (B, T, {g}, {k}, C), got shape {tuple(xt.shape)}")
        flat = xt.reshape(*xt.shape[:2], g * k, xt.shape[4])
        return _back(flat.index_select(2, self.inverse.to(xt.device)), was_numpy)


def _check_sensor_input(x: torch.Tensor, num_nodes: int | None = None) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"expected a sensor network (B, T, N, C) with 4 dims, got shape {tuple(x.shape)}; "
            "add a channel axis with x[..., None] for (B, T, N)"
        )
    if num_nodes is not None and x.shape[2] != num_nodes:
        raise ValueError(f"expected N={num_nodes} sensors (axis 2), got shape {tuple(x.shape)}")


def _split_balanced(points: np.ndarray, index: np.ndarray, groups: int, k: int, out: list) -> None:
    """Recursive bisection along the widest coordinate (a balanced KD-tree) into ``groups`` leaves."""
    if groups == 1:
        out.append(index)
        return
    left_groups = groups // 2
    n = len(index)
    # the left part gets its share of points, never more than its groups can hold
    n_left = min(left_groups * k, max(n - (groups - left_groups) * k, round(n * left_groups / groups)))
    pts = points[index]
    axis = int(np.argmax(pts.max(axis=0) - pts.min(axis=0))) if n else 0
    order = np.argsort(pts[:, axis], kind="stable")
    _split_balanced(points, index[order[:n_left]], left_groups, k, out)
    _split_balanced(points, index[order[n_left:]], groups - left_groups, k, out)


def group_sensors(coords: ArrayLike | None, k: int, num_nodes: int | None = None) -> SensorGroups:
    """Group sensors into spatial regions of about ``k`` sensors by their coordinates.

    A balanced KD-tree split: the sensors are halved recursively along their widest coordinate,
    so that every region is compact and holds ``k`` sensors or a few less (``G = ceil(N / k)``
    regions; the spare slots are padding, marked False in ``mask``).

    Args:
        coords: ``(N, D)`` sensor coordinates (e.g. latitude, longitude), or ``None`` to group
            sensors ``0..N-1`` in index order (then ``num_nodes`` is required).
        k: sensors per region, ``>= 1``.
        num_nodes: ``N`` when ``coords`` is ``None``.
    """
    if int(k) <= 0:
        raise ValueError(f"group size k must be positive, got {k}")
    k = int(k)
    if coords is None:
        if num_nodes is None or num_nodes <= 0:
            raise ValueError("group_sensors needs coords (N, D) or a positive num_nodes")
        n = int(num_nodes)
        groups = [np.arange(i, min(i + k, n)) for i in range(0, n, k)]
    else:
        pts = coords.detach().cpu().numpy() if isinstance(coords, torch.Tensor) else np.asarray(coords)
        if pts.ndim != 2:
            raise ValueError(f"coords must be (N, D), got shape {pts.shape}")
        if num_nodes is not None and pts.shape[0] != num_nodes:
            raise ValueError(f"coords hold {pts.shape[0]} sensors but num_nodes={num_nodes}")
        if not np.isfinite(pts).all():
            raise ValueError("coords contain NaN or infinite values; every sensor needs a position")
        n = pts.shape[0]
        groups = []
        _split_balanced(pts.astype(np.float64), np.arange(n), math.ceil(n / k), k, groups)
    g = len(groups)
    perm = np.zeros((g, k), dtype=np.int64)
    mask = np.zeros((g, k), dtype=bool)
    for i, members in enumerate(groups):
        perm[i, : len(members)] = members
        mask[i, : len(members)] = True
    return SensorGroups(n, k, torch.from_numpy(perm.reshape(-1)), torch.from_numpy(mask))


@dataclass(frozen=True)
class SensorPatchGrid:
    """What :func:`unpatchify_sensors` needs.

    Attributes:
        steps: original ``T``; ``padded_steps`` after end padding to a multiple of ``pt``.
        num_nodes, channels: ``N`` and ``C``.
        time_patch: ``pt``.
        groups: the :class:`SensorGroups`, or ``None`` when every sensor is its own region.
    """

    steps: int
    padded_steps: int
    num_nodes: int
    channels: int
    time_patch: int
    groups: SensorGroups | None

    @property
    def num_time_patches(self) -> int:
        return self.padded_steps // self.time_patch

    @property
    def token_mask(self) -> torch.Tensor:
        """``(G, k)`` slots that hold real sensors (all True without groups, as ``(N, 1)``)."""
        if self.groups is None:
            return torch.ones(self.num_nodes, 1, dtype=torch.bool)
        return self.groups.mask


def patchify_sensors(
    x: ArrayLike, time_patch: int, groups: SensorGroups | None = None, pad: PadMode = "zeros"
) -> tuple[ArrayLike, SensorPatchGrid]:
    """Split a sensor network into spacetime patches.

    Args:
        x: ``(B, T, N, C)``.
        time_patch: ``pt``, steps per time slice; ``T`` is padded at the end to a multiple.
        groups: spatial regions from :func:`group_sensors`; ``None`` keeps one sensor per region.
        pad: ``"zeros"``, ``"replicate"``, ``"reflect"`` or ``"none"`` for the time axis.

    Returns:
        tokens ``(B, nT, G, pt*k*C)`` (features ordered ``(pt, k, C)``), or ``(B, nT, N, pt*C)``
        without groups; and the :class:`SensorPatchGrid`. Padding slots of a group are zeros;
        ``grid.token_mask`` says which slots are real.
    """
    xt, was_numpy = _to_torch(x)
    _check_sensor_input(xt, groups.num_nodes if groups is not None else None)
    _check_pad(pad)
    if int(time_patch) <= 0:
        raise ValueError(f"time_patch must be positive, got {time_patch}")
    b, t, n, c = xt.shape
    tp = _padded_length(t, time_patch, time_patch, pad, "time")
    grid = SensorPatchGrid(t, tp, n, c, int(time_patch), groups)
    xt = _pad_end(xt, (1,), (tp,), pad)
    if groups is None:
        xg = xt[:, :, :, None, :]  # (B, Tp, N, 1, C)
    else:
        xg = groups.to_groups(xt)  # (B, Tp, G, k, C)
    g, k = xg.shape[2], xg.shape[3]
    tokens = xg.reshape(b, tp // time_patch, time_patch, g, k, c).permute(0, 1, 3, 2, 4, 5)
    return _back(tokens.reshape(b, tp // time_patch, g, time_patch * k * c), was_numpy), grid


def unpatchify_sensors(tokens: ArrayLike, grid: SensorPatchGrid) -> ArrayLike:
    """Invert :func:`patchify_sensors`: ``(B, nT, G, pt*k*C) -> (B, T, N, C)``."""
    tt, was_numpy = _to_torch(tokens)
    g, k = grid.token_mask.shape
    pt, c = grid.time_patch, grid.channels
    expected = (grid.num_time_patches, g, pt * k * c)
    if tt.ndim != 4 or tuple(tt.shape[1:]) != expected:
        raise ValueError(
            f"unpatchify_sensors expects tokens (B, {', '.join(map(str, expected))}), got {tuple(tt.shape)}"
        )
    b = tt.shape[0]
    xg = tt.reshape(b, expected[0], g, pt, k, c).permute(0, 1, 3, 2, 4, 5).reshape(b, grid.padded_steps, g, k, c)
    out = xg[:, :, :, 0, :] if grid.groups is None else grid.groups.from_groups(xg)
    return _back(out[:, : grid.steps], was_numpy)


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
