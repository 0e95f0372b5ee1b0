"""Input checks shared by the forecasters, so that a bad input fails early with a clear message."""

from __future__ import annotations

import torch


def check_grid(x: torch.Tensor, model: str, in_channels: int | None, t_in: int | None = None) -> None:
    """``x`` must be ``(B, T_in, C, H, W)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{model} expects a torch.Tensor (B, T, C, H, W), got {type(x).__name__}")
    if x.ndim != 5:
        raise ValueError(
            f"{model} expects a grid (B, T, C, H, W), got shape {tuple(x.shape)}"
            + ("; this looks like a sensor network (B, T, N, C): use a sensor model" if x.ndim == 4 else "")
        )
    if in_channels is not None and x.shape[2] != in_channels:
        raise ValueError(f"{model} was built for C={in_channels} channels (axis 2 of (B, T, C, H, W)), got {tuple(x.shape)}")
    if t_in is not None and x.shape[1] != t_in:
        raise ValueError(f"{model} was built for t_in={t_in} input steps (axis 1), got {tuple(x.shape)}")


def check_sensor(
    x: torch.Tensor, model: str, num_nodes: int | None, in_channels: int | None, t_in: int | None = None
) -> None:
    """``x`` must be ``(B, T_in, N, C)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{model} expects a torch.Tensor (B, T, N, C), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{model} expects a sensor network (B, T, N, C), got shape {tuple(x.shape)}")
    if num_nodes is not None and x.shape[2] != num_nodes:
        raise ValueError(f"{model} was built for N={num_nodes} sensors (axis 2 of (B, T, N, C)), got {tuple(x.shape)}")
    if in_channels is not None and x.shape[3] != in_channels:
        raise ValueError(f"{model} was built for C={in_channels} channels (axis 3 of (B, T, N, C)), got {tuple(x.shape)}")
    if t_in is not None and x.shape[1] != t_in:
        raise ValueError(f"{model} was built for t_in={t_in} input steps (axis 1), got {tuple(x.shape)}")


def check_any(
    x: torch.Tensor, model: str, in_channels: int | None, t_in: int | None = None, num_nodes: int | None = None
) -> None:
    """Grid ``(B, T, C, H, W)`` or sensor network ``(B, T, N, C)``."""
    if isinstance(x, torch.Tensor) and x.ndim == 4:
        check_sensor(x, model, num_nodes, in_channels, t_in)
    elif isinstance(x, torch.Tensor) and x.ndim == 5:
        check_grid(x, model, in_channels, t_in)
    else:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{model} expects a grid (B, T, C, H, W) or a sensor network (B, T, N, C), got {shape}")
