"""One trial of ``stpatch tune``: the config with a point applied, trained by :func:`stpatch.engine.training.train`
for a fixed wall-clock budget and scored on the validation split.

The tuner sets, for every trial alike::

    run_dir                      OUT/trials/NNNN
    train.max_time               the trial budget (seconds); the schedule anneals over it, as in any budgeted run
    train.max_epochs/max_steps   unlimited: the budget ends the trial
    train.limit_train_batches    val_every: an "epoch" is val_every steps, so validation (and pruning) comes often
    train.limit_val_batches      val_batches: the validations during training (for pruning) read the same
                                 first validation batches in every trial
    train.progress               false (the tuner prints a line per trial)

The score is the validation loss of the trial's final weights (the schedule anneals to the end of
the budget) in one closing validation on ``score_batches`` batches: by default the config's
``limit_val_batches``, so the whole validation split. The test split is never read. The trial's
checkpoints are removed once it is scored: train the best config with ``stpatch train``.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from stpatch.engine.config import RunConfig
from stpatch.tune.probe import point_config
from stpatch.tune.pruning import TrialPruning

__all__ = ["TrialCut", "TrialOutcome", "TrialSettings", "run_trial", "trial_config"]


@dataclass(frozen=True)
class TrialSettings:
    """What every trial shares: ``seconds`` of training, validation every ``val_every`` steps on
    ``val_batches`` batches, ``n_rungs`` pruning rungs, and the score's closing validation on
    ``score_batches`` batches (None: the config's ``limit_val_batches``)."""

    seconds: int
    val_every: int = 25
    val_batches: int = 8
    score_batches: int | None = None
    n_rungs: int = 4


@dataclass
class TrialOutcome:
    """A finished trial: ``value`` (the closing validation loss; inf when none was measured), optimiser
    ``steps``, wall ``seconds`` (setup and validation included), ``train_seconds`` (in ``fit``) and
    ``after_fit`` (seconds from the end of ``fit`` to the score: the closing validation)."""

    value: float
    steps: int
    seconds: float
    train_seconds: float
    after_fit: float


class TrialCut(RuntimeError):
    """The tune's deadline stopped a trial before its budget was trained: it is not scored."""


class _Keep(pl.Callback):
    """Keeps the trainer and module that :func:`train` builds, for the closing validation; stops
    training at ``stop_at`` (``time.time()``), the latest moment the tune's deadline allows."""

    trainer: pl.Trainer | None = None
    module: pl.LightningModule | None = None
    fit_seconds: float = 0.0
    fit_end: float | None = None
    cut: bool = False

    def __init__(self, stop_at: float | None = None) -> None:
        self.stop_at = stop_at

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.trainer, self.module, self._t0 = trainer, pl_module, time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.stop_at is not None and time.time() >= self.stop_at:
            self.cut = trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fit_end = time.monotonic()
        self.fit_seconds = self.fit_end - self._t0

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if hasattr(self, "_t0"):
            self.fit_seconds = time.monotonic() - self._t0


def trial_config(config: RunConfig, point: dict[str, Any], settings: TrialSettings, run_dir: Path) -> RunConfig:
    """``config`` with ``point`` applied and the tuner's per-trial settings (see the module docstring)."""
    trial = point_config(config, point)
    t = trial.train
    t.max_time, t.max_epochs, t.max_steps = str(int(settings.seconds)), -1, -1
    # an "epoch" of val_every steps: Lightning validates at epoch ends, and the data set's own length may be shorter
    limit = t.limit_train_batches
    t.limit_train_batches = settings.val_every if isinstance(limit, float) else min(int(limit), settings.val_every)
    t.limit_val_batches = settings.val_batches
    t.progress = False
    trial.run_dir = str(run_dir)
    return trial


def run_trial(config: RunConfig, point: dict[str, Any], settings: TrialSettings, run_dir: Path,
              trial: Any, stop_at: float | None = None) -> TrialOutcome:
    """Train ``config`` + ``point`` for ``settings.seconds`` and score it on the validation split.

    ``trial`` is the Optuna trial the validation losses are reported to; it raises
    :class:`optuna.TrialPruned` out of this function when the pruner stops it (``run_dir`` is then
    left without checkpoints as well). Training still running at ``stop_at`` (``time.time()``) stops
    there and :class:`TrialCut` is raised.
    """
    from stpatch.engine.training import train

    start = time.monotonic()
    pruning = TrialPruning(trial, settings.seconds / settings.n_rungs, settings.n_rungs)
    keep = _Keep(stop_at)
    try:
        result = train(trial_config(config, point, settings, run_dir), callbacks=[pruning, keep])
        if keep.cut:
            raise TrialCut(f"stopped at the tune's deadline after {keep.fit_seconds:.0f} of {settings.seconds} s "
                           f"of training; not scored")
        if keep.trainer is not None:
            # the same trainer and data module, the final weights: one closing validation, on more batches
            keep.trainer.limit_val_batches = (config.train.limit_val_batches if settings.score_batches is None
                                              else settings.score_batches)
            scores = keep.trainer.validate(keep.module, datamodule=keep.trainer.datamodule, verbose=False)
            final = float(scores[0].get("val_loss", math.inf)) if scores else math.inf
        else:  # nothing trained (a weight-free model): train() validated it once
            final = float(result.metrics.get("val_loss", math.inf))
        value = pruning.finish(final)
        steps = int(keep.trainer.global_step) if keep.trainer is not None else 0
        end = time.monotonic()
        return TrialOutcome(value, steps, end - start, keep.fit_seconds, end - (keep.fit_end or end))
    finally:
        # trials are short and many: their checkpoints are not kept (best.yaml is what a user trains)
        shutil.rmtree(Path(run_dir) / "checkpoints", ignore_errors=True)
        if keep.trainer is not None:
            trial.set_user_attr("steps", int(keep.trainer.global_step))
        trial.set_user_attr("train_seconds", round(keep.fit_seconds, 2))
