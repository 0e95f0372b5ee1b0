"""After training: fit a based model's per-lead correction gains on the validation split.

A model built with ``val_gain: true`` (:class:`~stpatch.models.base_forecast.BasedForecaster`)
forecasts ``base + g_k * correction`` at lead ``k``. The gains are chosen here, once, on the best
checkpoint: lead by lead, the gain in ``[0, 1]`` with the lowest training loss on the validation
windows (:meth:`~stpatch.models.base_forecast.BasedForecaster.fit_gain`). They are written into the
best checkpoint (atomically: a crash leaves the previous file) and into ``RUN_DIR/val_gain.json``
with the validation loss per lead before and after, and of the base alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from stpatch.atomic import atomic_path, write_json
from stpatch.engine.checkpoint import read_checkpoint

__all__ = ["fit_val_gain", "uses_val_gain"]

log = logging.getLogger("stpatch")


def uses_val_gain(module: torch.nn.Module) -> bool:
    """Whether the module's forecaster has per-lead gains to fit on validation."""
    return bool(getattr(getattr(module, "model", None), "val_gain", False))


def fit_val_gain(module, datamodule, best: Path, run_dir: Path) -> dict:
    """Load ``best`` into ``module``, fit the gains on ``datamodule``'s validation split, save them.

    Args:
        module: the run's :class:`~stpatch.engine.module.ForecastModule`.
        datamodule: the run's data module, set up for fitting (it has a validation split).
        best: the best checkpoint, rewritten with the gains.
        run_dir: where ``val_gain.json`` goes.

    Returns:
        what :meth:`~stpatch.models.base_forecast.BasedForecaster.fit_gain` measured.
    """
    checkpoint = read_checkpoint(best)
    module.load_state_dict(checkpoint["state_dict"])
    device = next(module.parameters()).device  # batches follow the model (e.g. one left on a GPU)
    batches = ({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
               for batch in datamodule.val_dataloader())
    was_training = module.training
    module.eval()
    try:
        result = module.model.fit_gain(batches, module.lead_losses)
    finally:
        module.train(was_training)
    checkpoint["state_dict"]["model.correction_gain"] = module.model.correction_gain.detach().clone()
    with atomic_path(best) as tmp:
        torch.save(checkpoint, tmp)
    write_json(run_dir / "val_gain.json", result)
    if "skipped" in result:
        log.warning("model.val_gain: %s", result["skipped"])
        return result
    log.info("correction gains per lead, fitted on %d validation windows: %s", result["windows"],
             ", ".join(f"{g:.2f}" for g in result["gain"]))
    return result
