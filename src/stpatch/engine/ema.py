"""An exponential moving average of the weights (``train.ema_decay``), for validation and the checkpoints.

After each optimiser step ``ema = d * ema + (1 - d) * w`` for every trainable floating-point parameter,
with ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so that the first steps are not averaged
with the initial weights for long. Validation runs on the average (so the best checkpoint is the best
*average*), and every checkpoint holds the average as its weights: evaluation, prediction and export use
it without knowing about it. The raw weights travel beside them (``ema_raw_weights``) for ``--resume``,
which continues from them exactly. Buffers (a fitted base forecast, correction gains) are the model's own
and never averaged.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

__all__ = ["WeightEMA"]

RAW_KEY = "ema_raw_weights"


class WeightEMA(pl.Callback):
    """Keep an exponential moving average of a LightningModule's trainable weights (see the module doc)."""

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] | None = None
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None  # (averages, weights), per step
        self._swapped = False

    @staticmethod
    def _params(pl_module: pl.LightningModule) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in pl_module.named_parameters() if p.requires_grad and p.is_floating_point()}

    def _ensure(self, pl_module: pl.LightningModule) -> None:
        if self.shadow is None:
            self.shadow = {n: p.detach().clone() for n, p in self._params(pl_module).items()}
        if self._pairs is None:  # looked up once, not at every optimiser step
            params = self._params(pl_module)
            self._pairs = (list(self.shadow.values()), [params[n].detach() for n in self.shadow])

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ensure(pl_module)  # on --resume the checkpoint already set it

    @torch.no_grad()
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._ensure(pl_module)
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        torch._foreach_lerp_(*self._pairs, 1.0 - d)
        self.updates += 1

    @torch.no_grad()
    def _swap(self, pl_module: pl.LightningModule) -> None:
        params = self._params(pl_module)
        for name, avg in self.shadow.items():
            raw = params[name].detach().clone()
            params[name].copy_(avg)
            avg.copy_(raw)
        self._swapped = not self._swapped

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.shadow is not None and trainer.state.fn == "fit" and not self._swapped:
            self._swap(pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._swapped:
            self._swap(pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if self.shadow is None:
            return
        state = checkpoint["state_dict"]
        # while swapped (a save during validation) the module holds the average and the shadow the raw weights
        average, raw = (self._params(pl_module), self.shadow) if self._swapped else (self.shadow, self._params(pl_module))
        checkpoint[RAW_KEY] = {n: raw[n].detach().clone() for n in self.shadow}
        for name in self.shadow:
            state[name] = average[name].detach().clone()

    @torch.no_grad()
    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        raw = checkpoint.get(RAW_KEY)
        if raw is None:  # a checkpoint written without the average: it starts from these weights
            return
        # the module was just loaded from state_dict, i.e. the average; training continues from the raw weights
        params = self._params(pl_module)
        self.shadow = {n: params[n].detach().clone() for n in raw}
        self._pairs = None
        for name, value in raw.items():
            params[name].copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.updates = int(state_dict.get("updates", 0))
