"""A learned forecaster stands on a base forecast: ``forecast = base(x) + correction(x, ...)``.

One mechanism for every learned model, grid or sensor. The base is any registered forecaster
that learns nothing by gradient: parameter-free (``persistence``, ``extrapolation``) or fitted in
closed form on the training split (``linear``, ``climatology``); ``"none"`` means no base. The
correction is the learned model, built with its own ``residual`` off and its output layer set to
zero, so an untrained model *is* its base, exactly.

With ``members: K`` the model holds ``K`` corrections of the same design, each with its own random
initialisation, trained side by side on the same batches, each on its own loss (the engine calls
:meth:`BasedForecaster.member_forecasts` while training); the forecast is the base plus their mean.
A deep ensemble (Lakshminarayanan et al., NeurIPS 2017) inside one run: under a wall-clock budget
each member takes ``1/K`` of the steps, which pays where one correction is best after a fraction
of the budget and overfits from there (the sensor suites, BENCHMARKS.md), and the members' spread
is a measure of their disagreement.

In a config::

    model:
      name: stpnet_sensor       # the correction network
      base: linear              # a registry name, or none
      base_options: {ridge: 0.001}
      feed_base: true           # the correction also sees the base forecast
      scale_correction: true    # the correction predicts residuals in units of the base's error
      balance_leads: true       # every lead weighs the same in the loss, relative to the base's error
      val_gain: true            # shrink the correction per lead towards the base, fitted on validation
      members: 3                # an ensemble: 3 corrections trained side by side, the forecast their mean

With ``feed_base`` the correction is built for ``T_in + T_out`` input steps and reads the input
window followed by the base forecast, ``cat([x, base(x)], dim=1)`` (time features are extended
over the forecast steps). With ``scale_correction`` the correction's output at lead ``k`` is
multiplied by the base's RMS error at that lead on the training split: the network predicts
standardised residuals, so an optimiser step moves a short lead (where the base is already good)
as little, relative to its error, as a long one. Fittable bases (and that scale) are fitted by
:func:`fit_forecaster` (the engine calls it on the training split before the first optimiser step);
the fitted state is part of the state dict, so a loaded run reproduces its base.

With ``balance_leads`` the training loss at lead ``k`` is weighted by ``1 / e_k^2`` (``1 / e_k`` for
an absolute loss; normalised to mean 1), ``e_k`` the base's RMS error at that lead on the training
split: with a plain MSE the long
leads, where the base errs most, dominate the gradient (on ERA5 t2m the +12 h squared error is about
20x the +1 h one), and the correction can end up slightly *worse* than its base at short leads.

With ``val_gain`` the correction at lead ``k`` is multiplied by a gain ``g_k`` in ``[0, 1]``
(``correction_gain``, ``(T_out,)``), chosen after training on the *validation* split, lead by lead,
as the value on a grid of 0, 0.05, ..., 1 with the lowest training loss there
(:meth:`BasedForecaster.fit_gain`, called by the engine on the best checkpoint; with fewer than 8
validation windows the gains stay 1). A correction that
helps at short leads but only adds noise at long ones (or the reverse) is then kept where it helps
and shrunk towards the base where it does not: the guarantee "no worse than the base" that the
zero-initialised head gives an untrained model, carried per lead to a trained one, as far as the
validation split is a guide.

>>> import torch
>>> from stpatch.models import create_model
>>> model = create_model("stpnet_sensor", in_channels=1, t_in=6, t_out=3, num_nodes=5, base="linear")
>>> x = torch.randn(2, 6, 5, 1)
>>> bool((model(x) == model.base(x)).all())   # untrained: exactly the base
True
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from stpatch.models.registry import CONTEXT_ARGS, create_model, get_model_entry

__all__ = ["BasedForecaster", "create_based", "extend_time_features", "fit_forecaster", "zero_output_layer"]

_TIME_ARGS = ("tod", "dow")


def _time_args(module: nn.Module) -> tuple[str, ...]:
    params = inspect.signature(module.forward).parameters
    return tuple(k for k in _TIME_ARGS if k in params)


def zero_output_layer(model: nn.Module, name: str = "model") -> None:
    """Set the weights and bias of ``model.output_layer`` (its last projection) to zero.

    Raises a ValueError naming the model when it does not expose ``output_layer``.
    """
    layer = getattr(model, "output_layer", None)
    if not isinstance(layer, nn.Module) or not hasattr(layer, "weight"):
        raise ValueError(
            f"{name} ({type(model).__name__}) exposes no `output_layer`, so its head cannot start at zero; "
            "it cannot stand on a base forecast"
        )
    nn.init.zeros_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def extend_time_features(
    tod: torch.Tensor | None, dow: torch.Tensor | None, t_out: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(B, T_in)`` time of day / day of week -> ``(B, T_in + T_out)``, the forecast steps appended.

    The step is the spacing of the last two ``tod`` values; the day of week advances when the
    time of day wraps past midnight.
    """
    if tod is None:
        return None, None if dow is None else torch.cat([dow, dow[:, -1:].expand(-1, t_out)], 1)
    step = (tod[:, -1:] - tod[:, -2:-1]) % 1.0 if tod.shape[1] > 1 else torch.zeros_like(tod[:, -1:])
    ahead = tod[:, -1:] + step * torch.arange(1, t_out + 1, device=tod.device, dtype=tod.dtype)
    days = (ahead + 1e-5).floor()  # 23/24 + 1/24 is midnight, not a hair before it
    future_tod = torch.cat([tod, (ahead - days).clamp(min=0.0)], 1)
    if dow is None:
        return future_tod, None
    future_dow = (dow[:, -1:] + days.long()) % 7
    return future_tod, torch.cat([dow, future_dow], 1)


def _per_lead(forecast: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """``forecast (B, T_out, ...)`` with lead ``k`` multiplied by ``factors[k]``."""
    shape = (1, -1, *([1] * (forecast.ndim - 2)))
    return forecast * factors.reshape(shape).to(forecast.dtype)


class BasedForecaster(nn.Module):
    """``forecast = base(x) + correction(x')``, ``x' = x`` or ``cat([x, base(x)], 1)`` (``feed_base``).

    Args:
        correction: the learned model; its ``output_layer`` is zeroed here.
        base: a forecaster with nothing to train by gradient (its parameters are frozen), or
            ``None`` for no base (the correction alone, starting at zero).
        t_out: forecast steps ``T_out``.
        feed_base: the correction reads the input window followed by the base forecast (it must
            have been built for ``T_in + T_out`` input steps).
        base_name: the base's registry name, for messages and reports.
        scale_correction: multiply the correction at each lead by the base's RMS error there
            (``correction_scale``, ``(T_out,)``, set by :meth:`fit`; ones until then).
        balance_leads: keep the base's RMS error per lead (``base_lead_rms``, set by :meth:`fit`)
            so that :meth:`lead_weights` can weight the training loss; the engine applies them.
        val_gain: multiply the correction at each lead by ``correction_gain`` (``(T_out,)``, ones
            until :meth:`fit_gain` sets them on validation windows after training).
        extra_corrections: further ensemble members (the same design as ``correction``, each with its
            own initialisation; their output layers are zeroed here too); the correction is their mean.

    ``forward(x, tod=None, dow=None)``: ``(B, T_in, C, H, W) -> (B, T_out, C, H, W)`` or
    ``(B, T_in, N, C) -> (B, T_out, N, C)``; ``tod``/``dow`` ``(B, T_in)`` go to whichever part
    takes them.
    """

    def __init__(
        self,
        correction: nn.Module,
        base: nn.Module | None,
        t_out: int,
        feed_base: bool = False,
        base_name: str = "none",
        scale_correction: bool = False,
        balance_leads: bool = False,
        val_gain: bool = False,
        extra_corrections: Iterable[nn.Module] = (),
    ) -> None:
        super().__init__()
        if feed_base and base is None:
            raise ValueError("feed_base=True needs a base forecast (base is 'none')")
        self.correction = correction
        self.base = base
        self.t_out = int(t_out)
        self.feed_base = bool(feed_base)
        self.base_name = base_name
        self.kind = getattr(correction, "kind", "grid")
        zero_output_layer(correction, type(correction).__name__)
        # members 2..K beside `correction` (member 1), so a one-member model keeps its state-dict keys
        self.extra_corrections = nn.ModuleList(extra_corrections)
        for member in self.extra_corrections:
            zero_output_layer(member, type(member).__name__)
        if base is not None:
            base.requires_grad_(False)  # the base is fitted in closed form, never by the optimiser
        self._base_time = _time_args(base) if base is not None else ()
        self._correction_time = _time_args(correction)
        self.scale_correction = bool(scale_correction)
        self.balance_leads = bool(balance_leads)
        self.register_buffer("correction_scale", torch.ones(self.t_out))
        if self.balance_leads:  # only then, so the state dicts of runs without it keep their keys
            self.register_buffer("base_lead_rms", torch.ones(self.t_out))
        self.register_buffer("scale_fitted_", torch.tensor(not (self.scale_correction or self.balance_leads)))
        self.val_gain = bool(val_gain)
        if self.val_gain:  # only then, like base_lead_rms
            self.register_buffer("correction_gain", torch.ones(self.t_out))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # runs saved before the correction scale existed (2026-11-25) have no such buffers: without the
        # options they are ones / fitted, so those runs still load
        if not (self.scale_correction or self.balance_leads):
            state_dict.setdefault(prefix + "correction_scale", torch.ones(self.t_out))
            state_dict.setdefault(prefix + "scale_fitted_", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def fitted(self) -> bool:
        """Whether the base (if fittable) and the correction scale (if used) are fitted."""
        return bool(self.scale_fitted_) and bool(getattr(self.base, "fitted", True))

    @torch.no_grad()
    def fit(self, data: Any) -> BasedForecaster:
        """Fit the base (when it is fittable and not yet fitted), then the correction scale.

        Args:
            data: training batches with ``"x"``, ``"y"`` (and ``"y_mask"``, ``"tod"``, ``"dow"``),
                e.g. a DataLoader, or a function returning them.
        """
        from stpatch.models.baselines import fit_batches

        batches = data if callable(data) else (lambda: data)
        if self.base is not None and getattr(self.base, "fitted", True) is False:
            self.base.fit(batches())
        if self.scale_correction or self.balance_leads:
            total = count = None
            for batch in fit_batches(batches()):
                if "y" not in batch:
                    raise ValueError("the correction scale is fitted on windows: batches need 'x' and 'y'")
                residual = (batch["y"] - self.base_forecast(batch["x"], batch.get("tod"), batch.get("dow"))).double()
                mask = batch.get("y_mask")
                mask = torch.ones_like(residual) if mask is None else mask.to(residual)
                sq, n = (residual.square() * mask).flatten(2).sum((0, 2)), mask.flatten(2).sum((0, 2))
                total, count = (sq, n) if total is None else (total + sq, count + n)
            if total is None:
                raise ValueError("fitting the correction scale got no data")
            rms = (total / count.clamp(min=1)).sqrt()
            rms = rms.clamp(min=1e-3 * float(rms.max().clamp(min=1e-12)))
            if self.scale_correction:
                self.correction_scale.copy_(rms.float())
            if self.balance_leads:
                self.base_lead_rms.copy_(rms.float())
            self.scale_fitted_.fill_(True)
        return self

    def lead_weights(self, power: float = 2.0) -> torch.Tensor | None:
        """Loss weights ``(T_out,)`` = ``base_lead_rms ** -power`` normalised to mean 1, or None.

        ``power`` is 2 for a squared loss and 1 for an absolute one, so each lead's weighted loss is
        measured in units of what the base already achieves there. None without ``balance_leads``.
        """
        if not self.balance_leads:
            return None
        weights = self.base_lead_rms.double().pow(-float(power))
        return (weights / weights.mean()).float()

    def base_forecast(self, x: torch.Tensor, tod: torch.Tensor | None = None, dow: torch.Tensor | None = None) -> torch.Tensor:
        """The base's forecast ``(B, T_out, ...)`` (zeros for no base)."""
        if self.base is None:
            return x.new_zeros(x.shape[0], self.t_out, *x.shape[2:])
        extra = {k: v for k, v in (("tod", tod), ("dow", dow)) if v is not None and k in self._base_time}
        return self.base(x, **extra)

    @property
    def members(self) -> int:
        """Number of corrections ``K`` (1 unless built with ``members``)."""
        return 1 + len(self.extra_corrections)

    def _corrections(
        self, x: torch.Tensor, tod: torch.Tensor | None, dow: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The base forecast and each member's correction (scaled, before the validation gain)."""
        base = self.base_forecast(x, tod, dow)
        inputs = x
        if self.feed_base:
            inputs = torch.cat([x, base.to(x.dtype)], dim=1)
            tod, dow = extend_time_features(tod, dow, self.t_out)
        extra = {k: v for k, v in (("tod", tod), ("dow", dow)) if v is not None and k in self._correction_time}
        corrections = [member(inputs, **extra) for member in (self.correction, *self.extra_corrections)]
        if self.scale_correction:
            corrections = [_per_lead(c, self.correction_scale) for c in corrections]
        return base, corrections

    def member_forecasts(
        self, x: torch.Tensor, tod: torch.Tensor | None = None, dow: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Each member's own forecast, ``(K, B, T_out, ...)``: what each member is trained on."""
        base, corrections = self._corrections(x, tod, dow)
        return torch.stack([base + c for c in corrections])

    def forward(self, x: torch.Tensor, tod: torch.Tensor | None = None, dow: torch.Tensor | None = None) -> torch.Tensor:
        base, corrections = self._corrections(x, tod, dow)
        correction = corrections[0] if len(corrections) == 1 else torch.stack(corrections).mean(0)
        if self.val_gain:
            correction = _per_lead(correction, self.correction_gain)
        return base + correction

    @torch.no_grad()
    def fit_gain(
        self,
        batches: Iterable[dict],
        lead_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
        grid: int = 21,
        max_windows: int = 512,
        min_windows: int = 8,
    ) -> dict:
        """Choose ``correction_gain`` lead by lead on validation windows; returns what was measured.

        Args:
            batches: validation batches with ``"x"``, ``"y"`` (and ``"y_mask"``, ``"tod"``, ``"dow"``),
                in the units the model forecasts in (scaled).
            lead_loss: ``(forecast, target, mask) -> (T_out,)``, the training loss at each lead.
            grid: number of gains tried, evenly from 0 to 1.
            max_windows: use at most this many windows (the first ones).
            min_windows: with fewer validation windows the gains stay 1 (``"skipped"`` says why): one
                window cannot tell a correction that helps from one that happened to fit it.

        Returns:
            ``{"gain": [...], "loss_before": [...], "loss_after": [...], "loss_base": [...], "windows": n}``,
            per lead; ``loss_before`` with gain 1, ``loss_base`` with gain 0 (the base alone).
        """
        if not self.val_gain:
            raise ValueError("fit_gain needs a model built with val_gain=True")
        self.correction_gain.fill_(1.0)
        bases, corrections, targets, masks, n = [], [], [], [], 0
        for batch in batches:
            x, extra = batch["x"], {k: batch[k] for k in ("tod", "dow") if batch.get(k) is not None}
            base = self.base_forecast(x, extra.get("tod"), extra.get("dow"))
            corrections.append((self(x, **extra) - base).float())
            bases.append(base.float())
            targets.append(batch["y"].float())
            masks.append(batch.get("y_mask"))
            n += x.shape[0]
            if n >= max_windows:
                break
        skipped = f"{n} validation window(s), fewer than {min_windows}: gains left at 1"
        if not n:  # a budget or split that left no validation window
            return {"gain": self.correction_gain.tolist(), "windows": 0, "skipped": skipped}
        base, corr, y = torch.cat(bases)[:max_windows], torch.cat(corrections)[:max_windows], torch.cat(targets)[:max_windows]
        mask = None if any(m is None for m in masks) else torch.cat(masks)[:max_windows]
        gains = torch.linspace(0.0, 1.0, int(grid))
        losses = torch.stack([lead_loss(base + g * corr, y, mask).double() for g in gains])  # (grid, T_out)
        # each lead's loss depends on that lead alone, so the chosen gains' loss is read off the grid
        best = losses.argmin(0) if base.shape[0] >= min_windows else torch.full_like(losses[0], len(gains) - 1).long()
        self.correction_gain.copy_(gains[best])
        result = {"gain": self.correction_gain.tolist(), "loss_before": losses[-1].tolist(),
                  "loss_after": losses.gather(0, best[None])[0].tolist(), "loss_base": losses[0].tolist(),
                  "windows": int(base.shape[0])}
        return result if base.shape[0] >= min_windows else {**result, "skipped": skipped}

    def extra_repr(self) -> str:
        return (f"base={self.base_name!r}, feed_base={self.feed_base}, scale_correction={self.scale_correction}, "
                f"balance_leads={self.balance_leads}, val_gain={self.val_gain}, members={self.members}")


def _takes(factory: Callable[..., Any], key: str) -> bool:
    params = inspect.signature(factory).parameters
    return key in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def create_based(
    name: str,
    base: str | None = "persistence",
    base_options: dict | None = None,
    feed_base: bool = False,
    scale_correction: bool = False,
    balance_leads: bool = False,
    val_gain: bool = False,
    members: int = 1,
    **kwargs: Any,
) -> BasedForecaster:
    """The registered model ``name`` as a correction on the registered forecaster ``base``.

    Args:
        name: the learned model (a registry name).
        base: ``"none"`` / ``None``, or a registry name of a forecaster without gradient-trained
            weights (``persistence``, ``linear``, ``climatology``, ``extrapolation``, ...).
        base_options: constructor options of the base (e.g. ``{"ridge": 1e-3}`` for ``linear``).
        feed_base: the correction also reads the base forecast (built for ``T_in + T_out`` steps).
        scale_correction: the correction predicts residuals in units of the base's per-lead error.
        balance_leads: the loss weighs every lead relative to the base's error there.
        val_gain: the correction is shrunk per lead by gains the engine fits on validation.
        members: corrections in the ensemble (1: a single correction).
        **kwargs: ``in_channels``, ``t_in``, ``t_out``, context arguments (``num_nodes``, ``coords``,
            ``adjacency``, ``grid_size``) and the correction's own options.
    """
    base = "none" if base is None else str(base)
    entry = get_model_entry(name)
    if kwargs.get("residual"):
        raise ValueError(f"{name}: residual=True adds persistence itself; with base={base!r} the base is the "
                         "residual (use base: persistence instead of residual: true)")
    t_in, t_out = int(kwargs.get("t_in", 1)), int(kwargs.get("t_out", 1))
    correction_kwargs = dict(kwargs)
    if _takes(entry.factory, "residual"):
        correction_kwargs["residual"] = False
    if feed_base:
        correction_kwargs["t_in"] = t_in + t_out
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"members must be a whole number >= 1 (corrections in the ensemble), got {members!r}")
    correction = create_model(name, **correction_kwargs)
    extra_corrections = [create_model(name, **correction_kwargs) for _ in range(members - 1)]
    base_model = None
    if base != "none":
        context = {k: kwargs[k] for k in ("in_channels", "t_in", "t_out", *CONTEXT_ARGS) if k in kwargs}
        base_model = create_model(base, **context, **(base_options or {}))
        learned = any(p.requires_grad and p.numel() for p in base_model.parameters())
        if learned and not hasattr(base_model, "fit"):
            raise ValueError(f"base {base!r} has weights to train by gradient; a base must be parameter-free or "
                             "fitted in closed form (persistence, linear, climatology, extrapolation)")
    elif base_options:
        raise ValueError(f"base_options {base_options} given without a base")
    return BasedForecaster(correction, base_model, t_out, feed_base=feed_base, base_name=base,
                           scale_correction=scale_correction, balance_leads=balance_leads, val_gain=val_gain,
                           extra_corrections=extra_corrections)


@torch.no_grad()
def fit_forecaster(model: nn.Module, data: Callable[[], Iterable] | Iterable) -> list[str]:
    """Fit, in closed form, every not yet fitted part of ``model`` that can be (a base, or the model).

    Args:
        model: a forecaster; its submodules with ``fit`` and ``fitted`` (``linear``,
            ``climatology``) are fitted when ``fitted`` is False.
        data: the training batches (e.g. a DataLoader), or a function that returns them
            (called only when something needs fitting).

    Returns:
        the qualified names of the modules fitted (``""`` is the model itself). The global
        random state is left as it was, so fitting does not change the training that follows.
    """
    def unfitted(module: nn.Module) -> bool:
        return hasattr(module, "fit") and getattr(module, "fitted", True) is False

    if not any(unfitted(m) for m in model.modules()):
        return []
    done = []
    with torch.random.fork_rng(devices=[]):
        for name, module in model.named_modules():  # a parent first: it fits its own parts in order
            if unfitted(module):
                module.fit(data() if callable(data) else data)
                done.append(name)
    return done
