"""Baselines every forecast should beat: persistence, climatology and linear autoregression.

All three accept grids ``(B, T_in, C, H, W)`` and sensor networks ``(B, T_in, N, C)`` and return
``(B, T_out, ...)`` with the same trailing axes. Their ``kind`` is ``"sensor"`` when built with
``num_nodes`` and ``"grid"`` otherwise; ``supported_kinds`` lists both.

Climatology and linear are *fitted*, in closed form, on the training split: ``model.fit(data)``
takes a data loader of batch dicts (``"x"``, ``"y"``, ``"x_mask"``, ``"y_mask"``, ``"tod"``), an
iterable of ``(x, y)`` pairs, or one tensor series ``(B, T, ...)``; missing entries (mask False)
are left out. ``model.fitted`` says whether it happened; the fitted state lives in the state dict.
The engine fits them before training or scoring (:func:`stpatch.models.base_forecast.fit_forecaster`).

Models without trainable weights (``has_parameters = False``) hold one zero-size parameter that
their output depends on, so ``loss.backward()`` and optimizers work in a training loop; a trainer
may also skip training them (``sum(p.numel() for p in model.parameters()) == 0``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from stpatch.models._common import check_any
from stpatch.models.registry import register_model

__all__ = ["Climatology", "LinearAR", "Persistence", "fit_batches", "time_slot"]


def fit_batches(data: Any) -> Iterator[dict[str, torch.Tensor]]:
    """The batches of ``data`` as dicts with ``"x"`` (and ``"y"``, masks, ``"tod"`` when known).

    ``data``: a tensor (one batch), a dict batch, or an iterable (e.g. a DataLoader) of tensors,
    ``(x, y)`` tuples or dict batches.
    """
    items = [data] if isinstance(data, torch.Tensor | dict) else data
    for batch in items:
        if isinstance(batch, torch.Tensor):
            yield {"x": batch}
        elif isinstance(batch, dict):
            yield batch
        elif isinstance(batch, list | tuple) and batch and isinstance(batch[0], torch.Tensor):
            yield {"x": batch[0], **({"y": batch[1]} if len(batch) > 1 else {})}
        else:
            raise TypeError(f"fit expects tensors, (x, y) pairs or batch dicts, got {type(batch).__name__}")


class _Baseline(nn.Module):
    kind = "grid"
    supported_kinds = ("grid", "sensor")
    has_parameters = True

    def __init__(
        self, in_channels: int | None, t_in: int | None, t_out: int, num_nodes: int | None, anchor: bool | None = None
    ) -> None:
        super().__init__()
        if int(t_out) <= 0:
            raise ValueError(f"t_out must be positive, got {t_out}")
        self.in_channels = in_channels
        self.t_in = t_in
        self.t_out = int(t_out)
        self.num_nodes = num_nodes
        self.kind = "sensor" if num_nodes is not None else "grid"
        if (not self.has_parameters) if anchor is None else anchor:
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


def time_slot(tod: torch.Tensor, slots: int) -> torch.Tensor:
    """Slot index ``0..slots-1`` of times of day ``tod`` (fractions of a day, any shape, wrapping past 1).

    Computed in double with a tolerance of 1e-3 of a slot, so that a time stored as float32 (hour
    ``h`` as ``h / 24 - 1e-8``) lands in its own slot, not the one before; a time at the end of the
    day wraps to slot 0.

    >>> time_slot(torch.tensor([0.0, 23 / 24, 1.0, 25 / 24]), 24).tolist()
    [0, 23, 0, 1]
    >>> time_slot(torch.tensor([5 / 24], dtype=torch.float32), 24).item()
    5
    """
    return (tod.double() * slots + 1e-3).floor().long() % slots


@register_model("climatology")
class Climatology(_Baseline):
    """Forecast a mean state: of the input window, or, after :meth:`fit`, of the training set.

    Before ``fit`` the forecast repeats the mean of the input window. ``fit`` stores the
    per-location training mean over the observed entries (``mean_``: ``(slots, *location)``, one
    row per time-of-day slot); with ``slots > 1`` and ``tod`` passed to ``forward`` each future step
    takes the mean of its time-of-day slot (steps extrapolated from the spacing of the last two
    input times). ``slots="auto"``: one slot per step of the day, read from the spacing of the
    ``tod`` seen in ``fit`` (1 when no ``tod`` comes, e.g. weekly data).

    ``(B, T_in, ...) -> (B, T_out, ...)``; no trainable weights.
    """

    has_parameters = False

    def __init__(
        self,
        in_channels: int | None = None,
        t_in: int | None = None,
        t_out: int = 1,
        num_nodes: int | None = None,
        slots: int | str = 1,
    ) -> None:
        super().__init__(in_channels, None, t_out, num_nodes)
        if slots != "auto" and (not isinstance(slots, int) or slots <= 0):
            raise ValueError(f"slots must be a positive int or 'auto', got {slots!r}")
        self.slots = slots
        self.register_buffer("mean_", torch.zeros(0))  # (slots, *location) once fitted
        self.register_buffer("overall_", torch.zeros(0))  # (*location)

    @property
    def fitted(self) -> bool:
        return self.overall_.numel() > 0

    @staticmethod
    def _auto_slots(tod: torch.Tensor | None) -> int:
        if tod is None or tod.shape[-1] < 2:
            return 1
        step = float(((tod[..., 1:] - tod[..., :-1]) % 1.0).median())
        return int(round(1.0 / step)) if step > 0 and 1 < 1.0 / step <= 24 * 60 else 1

    @torch.no_grad()
    def fit(self, data: torch.Tensor | Iterable, tod: torch.Tensor | None = None,
            mask: torch.Tensor | None = None) -> Climatology:
        """Store the training-set mean of the observed entries per location (and time-of-day slot).

        Args:
            data: a tensor ``(B, T, C, H, W)`` / ``(B, T, N, C)`` (e.g. the whole training series
                with ``B = 1``), or batches (see :func:`fit_batches`; dicts give ``"x_mask"``, ``"tod"``).
            tod: ``(B, T)`` time of day in ``[0, 1)`` for a tensor ``data`` (needed when ``slots > 1``).
            mask: bool like a tensor ``data``, True where observed.

        Returns:
            ``self``.
        """
        total = count = None
        slots = self.slots
        for batch in fit_batches(data):
            x = batch["x"]
            t = batch.get("tod", tod if isinstance(data, torch.Tensor) else None)
            m = batch.get("x_mask", mask if isinstance(data, torch.Tensor) else None)
            check_any(x, "climatology.fit", self.in_channels, None, self.num_nodes)
            if slots == "auto":
                slots = self._auto_slots(t)
            loc = x.shape[2:]
            flat = x.detach().double().reshape(-1, *loc)
            weight = torch.ones_like(flat) if m is None else m.reshape(-1, *loc).to(flat)
            if slots > 1:
                if t is None:
                    raise ValueError(f"climatology with slots={slots} needs tod (B, T) in fit")
                slot = time_slot(t.reshape(-1), slots).to(x.device)
            else:
                slot = torch.zeros(flat.shape[0], dtype=torch.long, device=x.device)
            if total is None:
                total, count = flat.new_zeros(slots, *loc), flat.new_zeros(slots, *loc)
            total.index_add_(0, slot, flat * weight)
            count.index_add_(0, slot, weight)
        if total is None:
            raise ValueError("climatology.fit got no data")
        # per location: the slot's mean, else the location's overall mean, else the mean of all
        overall = torch.where(count.sum(0) > 0, total.sum(0) / count.sum(0).clamp(min=1), total.sum() / count.sum().clamp(min=1))
        self.mean_ = torch.where(count > 0, total / count.clamp(min=1), overall).float()
        self.overall_ = overall.float()
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # resize the fitted buffers first
        for name in ("mean_", "overall_"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, tod: torch.Tensor | None = None, dow: torch.Tensor | None = None) -> torch.Tensor:
        check_any(x, "climatology", self.in_channels, None, self.num_nodes)
        b, loc = x.shape[0], x.shape[2:]
        slots = self.mean_.shape[0] if self.fitted else 1
        if not self.fitted:
            out = x.mean(1, keepdim=True).expand(b, self.t_out, *loc)
        else:
            if tuple(self.overall_.shape) != tuple(loc):
                raise ValueError(f"climatology was fitted on locations {tuple(self.overall_.shape)}, got input {tuple(x.shape)}")
            if slots > 1 and tod is not None:
                t = tod.double()  # float32 times of day are off by ~1e-7: hour h would fall into slot h-1
                step = (t[:, -1] - t[:, -2]) % 1.0 if t.shape[1] > 1 else torch.full_like(t[:, -1], 1.0 / slots)
                ahead = torch.arange(1, self.t_out + 1, device=x.device, dtype=t.dtype)
                slot = time_slot(t[:, -1:] + step[:, None] * ahead[None], slots)  # (B, T_out)
                out = self.mean_[slot].to(x.dtype)
            else:
                out = self.overall_.to(x.dtype).expand(b, self.t_out, *loc)
        return self._anchored(out)


@register_model("linear")
class LinearAR(_Baseline):
    """Linear autoregression over the input window, per location, fitted by least squares.

    ``out[t'] = sum_t w[t', t] * x[t] + b[t']`` at every location (pixel-channel or
    sensor-channel). With ``per_location`` (default: whenever the locations are known, i.e.
    ``num_nodes`` for sensors or ``grid_size=(H, W)`` for grids) each location has its own
    weights ``(T_out, T_in)``; otherwise one set is shared. Starts as persistence (weight 1 on the
    last step); :meth:`fit` solves the ridge-regularised least squares in closed form, one system
    per location and lead time, over the observed targets only.

    Args:
        trainable: ``False`` (default): the weights are buffers that only :meth:`fit` sets (a
            baseline: nothing for an optimiser to do). ``True``: parameters an optimiser trains
            (``fit`` then gives them their start).
        ridge: ``lambda`` of the ridge term, relative to the mean diagonal of each system's Gram
            matrix (the bias is not penalised).

    ``(B, T_in, C, H, W) -> (B, T_out, C, H, W)`` or ``(B, T_in, N, C) -> (B, T_out, N, C)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        t_in: int = 1,
        t_out: int = 1,
        num_nodes: int | None = None,
        per_location: bool | None = None,
        grid_size: tuple[int, int] | None = None,
        bias: bool = True,
        trainable: bool = False,
        ridge: float = 1e-3,
    ) -> None:
        super().__init__(in_channels, int(t_in), t_out, num_nodes, anchor=not trainable)
        self.has_parameters = bool(trainable)
        if per_location is None:
            per_location = num_nodes is not None or grid_size is not None
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
        self.ridge = float(ridge)
        weight = torch.zeros(locations, self.t_out, self.t_in)
        weight[:, :, -1] = 1.0
        bias_t = torch.zeros(locations, self.t_out) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_t) if bias else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias_t)
        self.register_buffer("fitted_", torch.tensor(False))

    @property
    def fitted(self) -> bool:
        return bool(self.fitted_)

    def _windows(self, batch: dict, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(x (b, T_in, ...), y (b, T_out, ...), y_mask)``: a batch of windows, or all windows of a series."""
        if "y" in batch:
            return batch["x"], batch["y"], batch.get("y_mask")
        series, length = batch["x"], self.t_in + self.t_out
        if series.ndim < 2 or series.shape[1] < length:
            raise ValueError(f"linear.fit needs windows (x, y) or a series (B, T >= {length}, ...), got {tuple(series.shape)}")
        idx = torch.arange(series.shape[1] - length + 1)[:, None] + torch.arange(length)
        w = series[:, idx].flatten(0, 1)  # (B * windows, L, ...)
        m = None if mask is None else mask[:, idx].flatten(0, 1)[:, self.t_in:]
        return w[:, : self.t_in], w[:, self.t_in:], m

    @torch.no_grad()
    def fit(self, data: torch.Tensor | Iterable, mask: torch.Tensor | None = None) -> LinearAR:
        """Least squares in closed form on training windows; missing targets are left out.

        Args:
            data: batches (see :func:`fit_batches`) of windows ``x (B, T_in, ...)`` with targets
                ``y (B, T_out, ...)`` (and ``"y_mask"``), or one series tensor ``(B, T, ...)`` cut into
                all its windows of ``T_in + T_out`` steps. Inputs are taken as they come (the data
                module zero-fills missing inputs, as the model sees them when it forecasts).
            mask: bool like a series tensor, True where observed.

        Returns:
            ``self`` (a location or lead time without enough observed rows keeps persistence).
        """
        gram = rhs = count = None
        for batch in fit_batches(data):
            x, y, ym = self._windows(batch, mask if isinstance(data, torch.Tensor) else None)
            check_any(x, "linear.fit", self.in_channels, self.t_in, self.num_nodes)
            b = x.shape[0]
            z = x.reshape(b, self.t_in, -1).double()
            if self.bias is not None:
                z = torch.cat([z, torch.ones_like(z[:, :1])], dim=1)  # (b, D, P)
            yf = y.reshape(b, self.t_out, -1).double()
            m = torch.ones_like(yf) if ym is None else ym.reshape(b, self.t_out, -1).to(yf)
            spec = "p" if self.per_location else ""
            g = torch.einsum(f"bop,bip,bjp->{spec}oij", m, z, z)
            r = torch.einsum(f"bop,bip->{spec}oi", m * yf, z)
            n = torch.einsum(f"bop->{spec}o", m)
            if not self.per_location:
                g, r, n = g[None], r[None], n[None]
            gram, rhs, count = (g, r, n) if gram is None else (gram + g, rhs + r, count + n)
        if gram is None:
            raise ValueError("linear.fit got no data")
        if self.per_location and gram.shape[0] != self.weight.shape[0]:
            raise ValueError(f"linear was built for {self.weight.shape[0]} locations {self.location_shape}, fitted on {gram.shape[0]}")
        d = gram.shape[-1]
        scale = gram[..., : self.t_in, : self.t_in].diagonal(dim1=-2, dim2=-1).mean(-1)  # (P, O)
        penalty = torch.zeros(d, dtype=gram.dtype)
        penalty[: self.t_in] = 1.0
        reg = (self.ridge * scale + 1e-8)[..., None, None] * torch.diag(penalty) + 1e-10 * torch.eye(d, dtype=gram.dtype)
        solution = torch.linalg.solve(gram + reg, rhs[..., None])[..., 0]  # (P, O, D)
        ok = (count >= d)[..., None]
        self.weight.copy_(torch.where(ok, solution[..., : self.t_in], self.weight.double()).float())
        if self.bias is not None:
            self.bias.copy_(torch.where(ok[..., 0], solution[..., self.t_in], self.bias.double()).float())
        self.fitted_.fill_(True)
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "fitted_", torch.tensor(True))  # runs saved before the flag existed
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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
        out = out.reshape(b, self.t_out, *loc)
        return out if self.has_parameters else self._anchored(out)
