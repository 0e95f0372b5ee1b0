"""The LightningModule that trains any registered forecaster on batches from an STDataModule."""

from __future__ import annotations

import inspect
import logging
import random
import time

import lightning.pytorch as pl
import numpy as np
import torch

from stpatch.engine.losses import get_scheduler, masked_loss, soft_csi_loss, ssim_loss, time_cosine_factor
from stpatch.models import create_model, fit_forecaster

log = logging.getLogger("stpatch")


def build_model(model_options: dict, data_meta: dict) -> torch.nn.Module:
    """Create the forecaster named in ``model_options`` for data described by ``data_meta``.

    ``model_options`` may name a ``base`` forecast (with ``base_options``, ``feed_base``): the model
    is then a correction on it (:mod:`stpatch.models.base_forecast`). Grids pass their
    ``grid_size`` (H, W), sensors ``num_nodes``, ``coords`` and ``adjacency``, to the models
    that take them (e.g. the per-location ``linear``).
    """
    options = {k: v for k, v in model_options.items() if k != "name"}
    kwargs = dict(in_channels=data_meta["in_channels"], t_in=data_meta["t_in"], t_out=data_meta["t_out"])
    if data_meta["kind"] == "sensor":
        kwargs["num_nodes"] = data_meta["num_nodes"]
        for key in ("coords", "adjacency"):
            if data_meta.get(key) is not None:
                kwargs[key] = np.asarray(data_meta[key])
    elif data_meta.get("spatial_shape"):
        kwargs["grid_size"] = tuple(int(s) for s in data_meta["spatial_shape"])
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
        #: ``(K, C)`` thresholds of ``train.csi_thresholds`` in scaled units, set by :meth:`set_loss_scales`
        self.csi_levels: torch.Tensor | None = None
        #: ``train.ssim_range`` in scaled units when ``train.ssim_weight`` > 0, set by :meth:`set_loss_scales`
        self.ssim_range: float | None = None

    def _to_scaled(self, scaler, values: list[float]) -> np.ndarray:
        """Physical ``values`` -> ``(len(values), C)`` in the units of the fitted ``scaler``, per channel."""
        meta = self.hparams["data_meta"]
        channels = int(meta["in_channels"])
        if meta["kind"] == "grid":  # (K, C, 1, 1): the scaler's channel axis is -3 for grids
            array = np.repeat(np.asarray(values, np.float32)[:, None, None, None], channels, axis=1)
        else:  # (K, 1, C): the last axis for sensor networks
            array = np.repeat(np.asarray(values, np.float32)[:, None, None], channels, axis=2)
        return np.asarray(scaler.transform(array), np.float32).reshape(len(values), channels)

    def set_loss_scales(self, scaler) -> None:
        """Turn the loss terms' physical values into scaled units with the data's fitted scaler:
        ``train.csi_thresholds`` (levels) and ``train.ssim_range`` (SSIM's value range)."""
        thresholds = [float(v) for v in self.train_options.get("csi_thresholds") or []]
        self.csi_levels = None
        if thresholds:
            scaled = self._to_scaled(scaler, thresholds)
            if not np.isfinite(scaled).all():
                raise ValueError(f"train.csi_thresholds {thresholds} do not map to finite scaled values "
                                 f"({scaled.tolist()}); give thresholds inside the data's range")
            self.csi_levels = torch.from_numpy(scaled)
        self.ssim_range = None
        if float(self.train_options.get("ssim_weight") or 0.0) > 0:
            if self.hparams["data_meta"]["kind"] != "grid":
                raise ValueError("train.ssim_weight is for grids (video, radar, weather fields); this data is a sensor "
                                 "network: set train.ssim_weight: 0")
            ends = self._to_scaled(scaler, [0.0, float(self.train_options.get("ssim_range", 1.0))])
            self.ssim_range = float(np.abs(ends[1] - ends[0]).mean())
            if not np.isfinite(self.ssim_range) or self.ssim_range <= 0:
                raise ValueError(f"train.ssim_range {self.train_options.get('ssim_range')} maps to {self.ssim_range} "
                                 "in scaled units; give the data's value range in its physical units")

    def _structure_terms(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
                         training: bool = False) -> dict:
        """The loss terms beside the elementwise loss, by name, each weighted: ``{"csi_loss": ..., ...}``.

        ``training``: the SSIM term on a random square of ``train.ssim_crop`` pixels (an estimate, cheaper)."""
        terms = {}
        if self.csi_levels is not None:
            terms["csi_loss"] = float(self.train_options.get("csi_weight", 1.0)) * soft_csi_loss(
                pred, target, mask, self.csi_levels)
        if self.ssim_range is not None:
            crop = int(self.train_options.get("ssim_crop", 64)) if training else 0
            terms["ssim_loss"] = float(self.train_options["ssim_weight"]) * ssim_loss(pred, target, mask, self.ssim_range,
                                                                                      crop=crop)
        return terms

    @property
    def trainable(self) -> bool:
        # weight-free baselines carry a zero-size parameter so optimizers accept them; they learn nothing
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad) > 0

    def setup(self, stage: str) -> None:
        """Fit what is fitted in closed form (a base forecast, a linear or climatology model) on the
        training split, before the first optimiser step or validation. A resumed run then loads
        the fitted state from its checkpoint (the same values)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "train_dataloader"):
            fitted = fit_forecaster(self.model, datamodule.train_dataloader)
            if fitted:
                log.info("fitted %s on the training split", ", ".join(n or type(self.model).__name__ for n in fitted))

    def _time_inputs(self, batch: dict) -> dict:
        """The batch's time features the model takes (``tod``, ``dow``)."""
        return {k: batch[k] for k in self._time_features if k in batch}

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(batch["x"], **self._time_inputs(batch))

    def _lead_weights(self) -> torch.Tensor | None:
        # a based model with balance_leads weighs each lead by the base's error there (power 2 for
        # a squared loss, 1 for an absolute one, so the weighted loss is in units of the base's)
        weights = getattr(self.model, "lead_weights", None)
        return weights(2.0 if self.loss_kind in ("mse", "mse_gdl") else 1.0) if callable(weights) else None

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        if stage == "train" and getattr(self.model, "members", 1) > 1:
            # an ensemble trains each member on its own loss (independent members, not one wide model)
            preds = self.model.member_forecasts(batch["x"], **self._time_inputs(batch))
            weights = self._lead_weights()
            loss = torch.stack([masked_loss(p, batch["y"], batch.get("y_mask"), self.loss_kind, weights)
                                for p in preds]).mean()
            pred = preds.mean(0)  # the structure terms below (soft CSI, SSIM) score the ensemble's forecast
        else:
            pred = self(batch)
            loss = masked_loss(pred, batch["y"], batch.get("y_mask"), self.loss_kind, self._lead_weights())
        for name, term in self._structure_terms(pred, batch["y"], batch.get("y_mask"), stage == "train").items():
            self.log(f"{stage}_{name}", term, on_step=False, on_epoch=True, batch_size=batch["x"].shape[0],
                     sync_dist=stage != "train")
            loss = loss + term
        self.log(f"{stage}_loss", loss, prog_bar=True, on_step=stage == "train", on_epoch=True,
                 batch_size=batch["x"].shape[0], sync_dist=stage != "train")
        return loss

    def lead_losses(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The training loss (without lead weights) of each lead on its own: ``(T_out,)``.

        ``pred``, ``target``, ``mask``: ``(B, T_out, ...)`` in scaled units, as in training.
        """
        out = []
        for k in range(pred.shape[1]):
            lead = slice(k, k + 1)
            m = None if mask is None else mask[:, lead]
            loss = masked_loss(pred[:, lead], target[:, lead], m, self.loss_kind)
            out.append(loss + sum(self._structure_terms(pred[:, lead], target[:, lead], m).values()))
        return torch.stack(out)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        opts = self.train_options
        optimizer = torch.optim.AdamW(self.parameters(), lr=opts.get("lr", 1e-3), weight_decay=opts.get("weight_decay", 0.0))
        # the schedule by name, from the one table (stpatch.engine.losses.SCHEDULERS) the config checks
        schedule = get_scheduler(opts.get("scheduler", "cosine"))(self, optimizer)
        return optimizer if schedule is None else {"optimizer": optimizer, "lr_scheduler": schedule}

    def on_train_start(self) -> None:
        self._started = time.monotonic()

    def _time_factor(self, step: int, budget: float) -> float:
        elapsed = time.monotonic() - getattr(self, "_started", time.monotonic())
        return time_cosine_factor(step, elapsed, budget, self._planned_steps())

    def _planned_steps(self) -> float | None:
        """Optimiser steps that ``max_epochs`` / ``max_steps`` allow (None without a trainer), read once."""
        if getattr(self, "_plan", None) is None:
            try:
                self._plan = float(self.trainer.estimated_stepping_batches)
            except (RuntimeError, AttributeError):  # not attached to a trainer (a bare module in a test)
                return None
        return self._plan

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
        # the checkpoint's state wins; what it lacks (the data profile of a run older than profiles) is kept
        self.extra_state = {**self.extra_state, **checkpoint.get("stpatch", {})}
        states = checkpoint.get("rng_states")
        if states:
            torch.set_rng_state(states["torch"])
            np_state = states["numpy"]
            np.random.set_state({"bit_generator": "MT19937", "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"],
                                 "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]}})
            random.setstate(states["python"])
