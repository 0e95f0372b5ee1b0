"""Baselines every forecast should beat: persistence, climatology and linear autoregression.

All three accept grids ``(B, T_in, C, H, W)`` and sensor networks ``(B, T_in, N, C)`` and return
``(B, T_out, ...)`` with the same trailing axes. Their ``kind`` is ``"sensor"`` when built with
``num_nodes`` and ``"grid"`` otherwise; ``supported_kinds`` lists both.

Models without trainable weights (``has_parameters = False``) hold one zero-size parameter that
their output depends on, so ``loss.backward()`` and optimizers work in a training loop; a trainer
may also skip training them (``sum(p.numel() for p in model.parameters()) == 0``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from stpatch.models._common import check_any
from stpatch.models.registry import register_model

__all__ = ["Climatology", "LinearAR", "Persistence"]


class _Baseline(nn.Module):
    kind = "grid"
    supported_kinds = ("grid", "sensor")
    has_parameters = True

    def __init__(self, in_channels: int | None, t_in: int | None, t_out: int, num_nodes: int | None) -> None:
        super().__init__()
        if int(t_out) <= 0:
            raise ValueError(f"t_out must be positive, got {t_out}")
        self.in_channels = in_channels
        self.t_in = t_in
        self.t_out = int(t_out)
        self.num_nodes = num_nodes
        self.kind = "sensor" if num_nodes is not None else "grid"
        if not self.has_parameters:
            self._anchor = nn.Parameter(torch.zeros(0))

    def _anchored(self, out: torch.Tensor) -> torch.Tensor:
        """Make ``out`` depend on the zero-size parameter (adds exactly 0)."""
        return out + self._anchor.sum().to(out.dtype)


@register_model("persistence")
class Persistence(_Baseline):
    """Repeat the last input frame (or sensor reading) ``T_out`` times.

    ``(B, T_in, ...) -> (B, T_out, ...)``; no trainable weights.
    """

    has_parameters = False

    def __init__(
        self, in_channels: int | None = None, t_in: int | None = None, t_out: int = 1, num_nodes: int | None = None
    ) -> None:
        super().__init__(in_channels, None, t_out, num_nodes)

    def forward(self, x: torch.Tensor, tod: torch.Tensor | None = None, dow: torch.Tensor | None = None) -> torch.Tensor:
        check_any(x, "persistence", self.in_channels, None, self.num_nodes)
        last = x[:, -1:]
        return self._anchored(last.expand(x.shape[0], self.t_out, *x.shape[2:]))


@register_model("climatology")
class Climatology(_Baseline):
    """Forecast a mean state: of the input window, or, after :meth:`fit`, of the training set.

    Before ``fit`` the forecast repeats the mean of the input window. ``fit`` stores the
    per-location training mean (``mean_``: ``(slots, *location)``, one row per time-of-day slot);
    with ``slots > 1`` and ``tod`` passed to ``forward`` each future step takes the mean of its
    time-of-day slot (steps extrapolated from the spacing of the last two input times).

    ``(B, T_in, ...) -> (B, T_out, ...)``; no trainable weights.
    """

    has_parameters = False

    def __init__(
        self,
        in_channels: int | None = None,
        t_in: int | None = None,
        t_out: int = 1,
        num_nodes: int | None = None,
        slots: int = 1,
    ) -> None:
        super().__init__(in_channels, None, t_out, num_nodes)
        if int(slots) <= 0:
            raise ValueError(f"slots must be positive, got {slots}")
        self.slots = int(slots)
        self.register_buffer("mean_", torch.zeros(0))  # (slots, *location) once fitted
        self.register_buffer("overall_", torch.zeros(0))  # (*location)

    @property
    def fitted(self) -> bool:
        return self.overall_.numel() > 0

    @torch.no_grad()
    def fit(self, data: torch.Tensor | Iterable, tod: torch.Tensor | None = None) -> Climatology:
        """Store the training-set mean per location (and per time-of-day slot).

        Args:
            data: a tensor ``(B, T, C, H, W)`` / ``(B, T, N, C)`` (e.g. the whole training series
                with ``B = 1``), or an iterable of such tensors, of tuples whose first item is one,
                or of dicts with key ``"x"`` (and ``"tod"``).
            tod: ``(B, T)`` time of day in ``[0, 1)`` for a tensor ``data`` (needed when ``slots > 1``).

        Returns:
            ``self``.
        """
        batches = [(data, tod)] if isinstance(data, torch.Tensor) else (self._unpack(b) for b in data)
        total = count = None
        for x, t in batches:
            check_any(x, "climatology.fit", self.in_channels, None, self.num_nodes)
            x = x.detach().double()
            loc = x.shape[2:]
            flat = x.reshape(-1, *loc)
            if self.slots > 1:
                if t is None:
                    raise ValueError(f"climatology with slots={self.slots} needs tod (B, T) in fit")
                slot = (t.reshape(-1).double() * self.slots).floor().long().clamp(0, self.slots - 1).to(x.device)
            else:
                slot = torch.zeros(flat.shape[0], dtype=torch.long, device=x.device)
            if total is None:
                total = flat.new_zeros(self.slots, *loc)
                count = flat.new_zeros(self.slots)
            total.index_add_(0, slot, flat)
            count.index_add_(0, slot, torch.ones_like(slot, dtype=flat.dtype))
        if total is None:
            raise ValueError("climatology.fit got no data")
        overall = total.sum(0) / count.sum()
        shape = (self.slots,) + (1,) * (total.ndim - 1)
        mean = torch.where(count.reshape(shape) > 0, total / count.clamp(min=1).reshape(shape), overall)
        self.mean_ = mean.float()
        self.overall_ = overall.float()
        return self

    @staticmethod
    def _unpack(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(batch, torch.Tensor):
            return batch, None
        if isinstance(batch, dict):
            return batch["x"], batch.get("tod")
        return batch[0], None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # resize the fitted buffers first
        for name in ("mean_", "overall_"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, tod: torch.Tensor | None = None, dow: torch.Tensor | None = None) -> torch.Tensor:
        check_any(x, "climatology", self.in_channels, None, self.num_nodes)
        b, loc = x.shape[0], x.shape[2:]
        if not self.fitted:
            out = x.mean(1, keepdim=True).expand(b, self.t_out, *loc)
        else:
            if tuple(self.overall_.shape) != tuple(loc):
                raise ValueError(f"climatology was fitted on locations {tuple(self.overall_.shape)}, got input {tuple(x.shape)}")
            if self.slots > 1 and tod is not None:
                step = (tod[:, -1] - tod[:, -2]) % 1.0 if tod.shape[1] > 1 else torch.full_like(tod[:, -1], 1.0 / self.slots)
                ahead = torch.arange(1, self.t_out + 1, device=x.device, dtype=tod.dtype)
                future = (tod[:, -1:] + step[:, None] * ahead[None]) % 1.0
                slot = (future * self.slots).floor().long().clamp(0, self.slots - 1)  # (B, T_out)
                out = self.mean_[slot].to(x.dtype)
            else:
                out = self.overall_.to(x.dtype).expand(b, self.t_out, *loc)
        return self._anchored(out)


@register_model("linear")
class LinearAR(_Baseline):
    """Linear autoregression over the input window, per location.

    ``out[t'] = sum_t w[t', t] * x[t] + b[t']`` at every location (pixel-channel or
    sensor-channel). The weights ``(T_out, T_in)`` are shared by all locations, or with
    ``per_location=True`` one set per location (needs ``num_nodes`` for sensors or
    ``grid_size=(H, W)`` for grids). Initialised as persistence (weight 1 on the last step).

    ``(B, T_in, C, H, W) -> (B, T_out, C, H, W)`` or ``(B, T_in, N, C) -> (B, T_out, N, C)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        t_in: int = 1,
        t_out: int = 1,
        num_nodes: int | None = None,
        per_location: bool = False,
        grid_size: tuple[int, int] | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, int(t_in), t_out, num_nodes)
        self.per_location = per_location
        if per_location:
            if num_nodes is not None:
                self.location_shape: tuple[int, ...] = (num_nodes, in_channels)
            elif grid_size is not None:
                self.location_shape = (in_channels, *grid_size)
            else:
                raise ValueError("linear with per_location=True needs num_nodes (sensors) or grid_size=(H, W) (grids)")
            locations = math.prod(self.location_shape)
        else:
            self.location_shape = ()
            locations = 1
        weight = torch.zeros(locations, self.t_out, self.t_in)
        weight[:, :, -1] = 1.0
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(locations, self.t_out)) if bias else None

    def forward(self, x: torch.Tensor, tod: torch.Tensor | None = None, dow: torch.Tensor | None = None) -> torch.Tensor:
        check_any(x, "linear", self.in_channels, self.t_in, self.num_nodes)
        b, loc = x.shape[0], x.shape[2:]
        flat = x.reshape(b, self.t_in, -1)
        if self.per_location:
            if tuple(loc) != self.location_shape:
                raise ValueError(f"linear (per_location) was built for locations {self.location_shape}, got {tuple(x.shape)}")
            out = torch.einsum("btp,pot->bop", flat, self.weight)
            if self.bias is not None:
                out = out + self.bias.t()[None]
        else:
            out = torch.einsum("btp,ot->bop", flat, self.weight[0])
            if self.bias is not None:
                out = out + self.bias[0][None, :, None]
        return out.reshape(b, self.t_out, *loc)
