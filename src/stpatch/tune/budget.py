"""The wall-clock budget of a tune: a deadline counted from the process start, and whether one more
trial fits before it.

Optuna's own ``timeout`` only stops *launching* trials once it has passed, so a trial started just
before it runs past it; here a trial starts only when its whole cost (training budget plus the
overhead measured on earlier trials: data setup, validation, checkpoints) and the closing work
(tables, plot, the process's exit) still fit; and a trial still training when the machine has slowed
down is stopped in time (:meth:`Budget.stop_training_at`), unscored.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from stpatch.engine.losses import budget_seconds

__all__ = ["Budget", "parse_budget", "process_start"]


def parse_budget(text: str | int | float, what: str = "--budget") -> float:
    """``"00:30:00"`` / ``"1:00:00:00"`` / ``"90"`` -> seconds (> 0); ValueError naming ``what`` otherwise."""
    try:
        seconds = budget_seconds(str(text).strip())
    except ValueError:
        seconds = None
    if not seconds or seconds <= 0:
        raise ValueError(f"{what} must be a positive time as HH:MM:SS (e.g. 00:30:00) or seconds, got {text!r}")
    return float(seconds)


def process_start() -> float:
    """When this process started, as ``time.time()`` (Linux: from /proc; elsewhere: now), so that the
    interpreter's and the imports' seconds count against a budget."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time in clock ticks since boot
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


@dataclass
class Budget:
    """``seconds`` of wall clock from ``started`` (``time.time()``), ``reserve`` of them kept for the end.

    ``overheads`` are the measured seconds each trial took beyond its training budget, ``after_fits``
    the part of them after training (the closing validation); before the first trial, ``first_overhead``
    (and half of it) stands in for them.
    """

    seconds: float
    started: float = field(default_factory=time.time)
    reserve: float = 10.0
    first_overhead: float = 15.0
    overheads: list[float] = field(default_factory=list)
    after_fits: list[float] = field(default_factory=list)

    @property
    def deadline(self) -> float:
        return self.started + self.seconds

    def elapsed(self) -> float:
        return time.time() - self.started

    def remaining(self) -> float:
        """Seconds left before the deadline (negative past it)."""
        return self.deadline - time.time()

    def overhead(self) -> float:
        """Seconds a trial costs beyond its training budget: the largest measured, or the first guess."""
        return max(self.overheads) if self.overheads else self.first_overhead

    def trial_cost(self, trial_seconds: float) -> float:
        return trial_seconds + self.overhead()

    def fits(self, trial_seconds: float) -> bool:
        """Whether one more trial of ``trial_seconds`` training, and the closing work, end before the deadline."""
        return self.trial_cost(trial_seconds) + self.reserve <= self.remaining()

    def stop_training_at(self) -> float:
        """When (``time.time()``) a trial still training must stop so that its closing validation and the
        closing work end by the deadline, should the machine have slowed down since the trial started."""
        after = max(self.after_fits) if self.after_fits else self.first_overhead / 2
        return self.deadline - self.reserve - after

    def record(self, trial_wall: float, trained: float, after_fit: float | None = None) -> None:
        """A trial's wall time and its seconds of training within budget (the budget for a trial that
        ran to its end, less for a pruned one): the rest is its overhead; ``after_fit`` its part after training."""
        self.overheads.append(max(trial_wall - trained, 0.0))
        if after_fit is not None:
            self.after_fits.append(after_fit)
