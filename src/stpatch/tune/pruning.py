"""Pruning a trial while it trains: report the validation loss to Optuna on a wall-clock grid.

Every trial trains for the same wall-clock budget, split into ``n_rungs`` equal rungs. After each
validation inside ``fit`` the callback reports the best validation loss so far at every rung that
has passed since the last report (step = rung index, 1-based), so that trials of models of any speed
are compared at the same share of their budget (Optuna's median pruner compares equal steps only).
When the pruner says so it raises :class:`optuna.TrialPruned`, which ends ``fit``.

The last rung (``n_rungs``) is the trial's score, reported by :meth:`TrialPruning.finish` after the
trial's closing validation (which may cover more of the validation split), never pruned: the trial is
over by then.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl

__all__ = ["TrialPruning"]


class TrialPruning(pl.Callback):
    """Report ``monitor`` to ``trial`` at rungs of ``rung_seconds`` of training; prune when told.

    Args:
        trial: an ``optuna.Trial`` (anything with ``report(value, step)`` and ``should_prune()``).
        rung_seconds: wall-clock seconds of training per rung.
        n_rungs: rungs per trial; rung ``n_rungs`` is the end of the trial (reported by :meth:`finish`).
        monitor: the logged validation metric.
        clock: seconds, monotonic (a test passes a fake one).

    Attributes:
        best: lowest ``monitor`` seen (inf before the first validation).
        history: ``(seconds of training, global step, value)`` per validation inside ``fit``.
        pruned_at: the rung at which the trial was pruned, or None.
    """

    def __init__(self, trial: Any, rung_seconds: float, n_rungs: int, monitor: str = "val_loss",
                 clock: Any = time.monotonic) -> None:
        if rung_seconds <= 0 or n_rungs < 1:
            raise ValueError(f"rung_seconds must be > 0 and n_rungs >= 1, got {rung_seconds} and {n_rungs}")
        self.trial, self.rung_seconds, self.n_rungs = trial, float(rung_seconds), int(n_rungs)
        self.monitor, self.clock = monitor, clock
        self.best = math.inf
        self.history: list[tuple[float, int, float]] = []
        self.pruned_at: int | None = None
        self._reported = 0
        self._started: float | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = self.clock()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # only validations inside fit count; the trial's closing trainer.validate is read by finish()
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        self.observe(float(value), int(trainer.global_step))

    def observe(self, value: float, step: int) -> None:
        """Record one validation; report the rungs that have passed; raise TrialPruned if the pruner says so."""
        import optuna

        elapsed = self.clock() - (self._started if self._started is not None else self.clock())
        self.history.append((elapsed, step, value))
        if math.isfinite(value):
            self.best = min(self.best, value)
        # rung n_rungs is the end of training: finish() reports it after the closing validation
        rung = min(int(elapsed // self.rung_seconds), self.n_rungs - 1)
        if rung <= self._reported or not math.isfinite(self.best):
            return
        for r in range(self._reported + 1, rung + 1):
            self.trial.report(self.best, r)
        self._reported = rung
        if self.trial.should_prune():
            self.pruned_at = rung
            raise optuna.TrialPruned(f"pruned at rung {rung}/{self.n_rungs} (validation loss {self.best:.6g})")

    def finish(self, value: float) -> float:
        """Report the trial's score ``value`` (its closing validation) at the last rung and return it."""
        if math.isfinite(value) and self._reported < self.n_rungs:
            self.trial.report(value, self.n_rungs)
            self._reported = self.n_rungs
        return value
