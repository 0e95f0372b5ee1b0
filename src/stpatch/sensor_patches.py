"""Spacetime patches of sensor networks: sensors grouped into spatial regions, time into slices.

``(B, T, N, C)`` becomes tokens ``(B, nT, G, pt*k*C)`` over ``G`` regions of at most ``k`` sensors,
grouped by a balanced KD bisection on their coordinates. Re-exported by :mod:`stpatch.patches`, which
holds the grid patches and the shared padding helpers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from stpatch.patches import ArrayLike, PadMode, _back, _check_pad, _pad_end, _padded_length, _to_torch

__all__ = ["SensorGroups", "SensorPatchGrid", "group_sensors", "patchify_sensors", "unpatchify_sensors"]

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
