"""The LightningModule that trains any registered forecaster on batches from an STDataModule."""

from __future__ import annotations

import inspect
import math
import random
import time

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F

from stpatch.models import create_model


def _budget_seconds(max_time: str | None) -> float | None:
    if not max_time:
        return None
    from stpatch.engine.config import parse_max_time

    days, hours, minutes, seconds = (int(p) for p in parse_max_time(max_time).split(":"))
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def masked_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, kind: str) -> torch.Tensor:
    """Mean elementwise loss over the observed entries only.

    Args:
        pred, target: same shape, e.g. ``(B, T, C, H, W)`` or ``(B, T, N, C)``.
        mask: bool like ``target``, True where observed; ``None`` means all observed.
        kind: ``"mse"``, ``"mae"`` or ``"huber"``.
    """
    if kind == "mse":
        err = (pred - target) ** 2
    elif kind == "mae":
        err = (pred - target).abs()
    elif kind == "huber":
        err = F.huber_loss(pred, target, reduction="none")
    else:
        raise ValueError(f"loss must be mse, mae or huber, got {kind!r}")
    if mask is None:
        return err.mean()
    mask = mask.to(err.dtype)
    # missing targets count zero and are left out of the mean, never treated as true zeros
    return (err * mask).sum() / mask.sum().clamp_min(1.0)


def build_model(model_options: dict, data_meta: dict) -> torch.nn.Module:
    """Create the forecaster named in ``model_options`` for data described by ``data_meta``."""
    options = {k: v for k, v in model_options.items() if k != "name"}
    kwargs = dict(in_channels=data_meta["in_channels"], t_in=data_meta["t_in"], t_out=data_meta["t_out"])
    if data_meta["kind"] == "sensor":
        kwargs["num_nodes"] = data_meta["num_nodes"]
        for key in ("coords", "adjacency"):
            if data_meta.get(key) is not None:
                kwargs[key] = np.asarray(data_meta[key])
    return create_model(model_options["name"], **kwargs, **options)


class ForecastModule(pl.LightningModule):
    """Wraps a forecaster: loss on scaled values with the target mask, AdamW, cosine schedule.

    Args:
        model_options: ``{"name": ..., **constructor options}``.
        data_meta: kind, in_channels, t_in, t_out, num_nodes, coords, adjacency (from the data module).
        train_options: the ``train`` section of the config as a dict.
    """

    def __init__(self, model_options: dict, data_meta: dict, train_options: dict):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_options, data_meta)
        self.loss_kind = train_options.get("loss", "mse")
        self.train_options = train_options
        params = inspect.signature(self.model.forward).parameters
        self._time_features = [k for k in ("tod", "dow") if k in params]
        self.extra_state: dict = {}

    @property
    def trainable(self) -> bool:
        # weight-free baselines carry a zero-size parameter so optimizers accept them; they learn nothing
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad) > 0

    def forward(self, batch: dict) -> torch.Tensor:
        extra = {k: batch[k] for k in self._time_features if k in batch}
        return self.model(batch["x"], **extra)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        pred = self(batch)
        loss = masked_loss(pred, batch["y"], batch.get("y_mask"), self.loss_kind)
        self.log(f"{stage}_loss", loss, prog_bar=True, on_step=stage == "train", on_epoch=True,
                 batch_size=batch["x"].shape[0], sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        opts = self.train_options
        optimizer = torch.optim.AdamW(self.parameters(), lr=opts.get("lr", 1e-3), weight_decay=opts.get("weight_decay", 0.0))
        if opts.get("scheduler", "cosine") == "none":
            return optimizer
        budget = _budget_seconds(opts.get("max_time"))
        if budget:
            # under a wall-clock budget the number of steps is unknown: anneal over elapsed time instead
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self._time_factor(step, budget))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        # step-wise one-cycle cosine over the planned steps
        total = self.trainer.estimated_stepping_batches
        total = int(total) if total and total != float("inf") else 10_000
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=opts.get("lr", 1e-3), total_steps=max(total, 1),
                                                       pct_start=0.05, anneal_strategy="cos")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_start(self) -> None:
        self._started = time.monotonic()

    def _time_factor(self, step: int, budget: float) -> float:
        warmup = min(1.0, (step + 1) / 50)
        elapsed = time.monotonic() - getattr(self, "_started", time.monotonic())
        progress = min(elapsed / budget, 1.0)
        return warmup * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

    # Random states travel with the checkpoint so that a resumed run continues exactly.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["stpatch"] = dict(self.extra_state)
        # plain types and tensors only, so Lightning's weights-only loading accepts them
        np_state = np.random.get_state(legacy=False)
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                      "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                      "gauss": float(np_state["gauss"])},
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.extra_state = dict(checkpoint.get("stpatch", {}))
        states = checkpoint.get("rng_states")
        if states:
            torch.set_rng_state(states["torch"])
            np_state = states["numpy"]
            np.random.set_state({"bit_generator": "MT19937", "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"],
                                 "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]}})
            random.setstate(states["python"])
