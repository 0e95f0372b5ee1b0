"""Input handling and reductions shared by every field module of :mod:`stpatch.metrics`.

Layouts: grids ``(B, T, C, H, W)``, sensors ``(B, T, N, C)``; dimension 1 is always the lead time.
Statistics (``Stats``) are dicts of tensors with a leading ``T`` axis that add up over batches;
a metric is ``finalize(stats(pred, target, mask, ...))``. Sums run in float64 (float32 on MPS).
"""

from __future__ import annotations

from typing import Literal, Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray]
Reduce = Literal["horizon", "mean"]
Stats = dict[str, torch.Tensor]


def as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, (list, tuple, float, int)):
        return torch.as_tensor(np.asarray(x))
    raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def work_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def prepare(
    pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Check shapes; return ``pred, target`` in the working dtype and ``mask`` broadcast to them."""
    p, t = as_tensor(pred, "pred"), as_tensor(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred and target must have the same shape, got pred {tuple(p.shape)} and target {tuple(t.shape)}"
        )
    if p.ndim < 2:
        raise ValueError(f"expected at least (B, T, ...) dimensions, got shape {tuple(p.shape)}")
    dtype = work_dtype(p.device)
    p, t = p.to(dtype), t.to(device=p.device, dtype=dtype)
    return p, t, prepare_mask(mask, p)


def prepare_mask(mask: ArrayLike | None, like: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    m = as_tensor(mask, "mask").to(like.device)
    if m.dtype != torch.bool:
        if m.is_floating_point() or m.is_complex() or not bool(((m == 0) | (m == 1)).all()):
            raise TypeError(f"mask must be boolean (True = valid), got dtype {m.dtype}")
        m = m.bool()
    return _broadcast(m, like, "mask", "pred/target")


def prepare_climatology(climatology: ArrayLike, like: torch.Tensor) -> torch.Tensor:
    """``climatology`` in the dtype and device of ``like`` (the target), broadcast to its shape."""
    c = as_tensor(climatology, "climatology").to(device=like.device, dtype=like.dtype)
    return _broadcast(c, like, "climatology", "target")


def _broadcast(x: torch.Tensor, like: torch.Tensor, what: str, onto: str) -> torch.Tensor:
    try:
        return torch.broadcast_to(x, like.shape)
    except RuntimeError:
        raise ValueError(
            f"{what} of shape {tuple(x.shape)} does not broadcast to {onto} shape {tuple(like.shape)}"
        ) from None


def check_range(data_range: float) -> float:
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range!r}")
    return data_range


def require_grid(x: torch.Tensor, metric: str) -> None:
    if x.ndim != 5:
        raise ValueError(f"{metric} needs grids (B, T, C, H, W), got shape {tuple(x.shape)}")


def other_dims(x: torch.Tensor) -> tuple[int, ...]:
    """Every dimension but the lead time (dim 1)."""
    return (0, *range(2, x.ndim))


def frame_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the dimensions of one frame (everything after B, T): ``(B, T, ...) -> (B, T)``."""
    return x.sum(dim=tuple(range(2, x.ndim))) if x.ndim > 2 else x


def zero_where_invalid(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    # torch.where rather than multiplication, so NaN in invalid entries cannot leak in
    return x if valid is None else torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))


def div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with NaN where ``den == 0``."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.nan)


def reduce_horizons(values: torch.Tensor, reduce: Reduce) -> torch.Tensor:
    """``"horizon"``: the values per lead time as they are; ``"mean"``: their plain mean."""
    if reduce == "horizon":
        return values
    if reduce == "mean":
        return values.mean(dim=0)
    raise ValueError(f"reduce must be 'horizon' or 'mean', got {reduce!r}")


def fin_mean(s: Stats) -> torch.Tensor:
    """``sum / n`` per lead time (and channel); NaN where ``n == 0``."""
    return div(s["sum"], s["n"])


def fin_sqrt_mean(s: Stats) -> torch.Tensor:
    """``sqrt(sum / n)``; NaN where ``n == 0``."""
    return torch.sqrt(div(s["sum"], s["n"]))


def add_stats(old: Stats, new: Stats) -> Stats:
    """Merge two batches' statistics by adding them key by key (the default)."""
    return {key: old[key] + new[key] for key in old}
