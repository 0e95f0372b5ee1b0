"""``stpatch tune``: search patch size, width, depth and learning rate under a wall-clock budget.

::

    tune(config, budget="00:30:00")
      -> the data's shapes (one data-module setup), the search space (default or --space), probed
      -> trial 0: the config as it is; then Optuna (seeded TPE) proposes, each trial trains through
         stpatch.engine.training.train for the same trial budget, reports validation loss on a time
         grid (median pruning or successive halving) and is scored on the validation split
      -> OUT/trials.csv, OUT/best.yaml, OUT/val_loss_vs_patch.png, OUT/study.db (resume with resume=True)

A trial starts only while it and the closing work fit before the deadline, counted from the process
start (:mod:`stpatch.tune.budget`). The test split is never read.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stpatch.atomic import write_text
from stpatch.engine.config import RunConfig, load_config, save_config
from stpatch.tune import outputs
from stpatch.tune.budget import Budget, parse_budget
from stpatch.tune.probe import check_point, default_point, point_config
from stpatch.tune.space import (
    SearchSpace,
    TuneSpaceError,
    default_space,
    encode,
    load_space,
    space_from_dict,
    with_default,
)
from stpatch.tune.trial import TrialCut, TrialSettings, run_trial

__all__ = ["PRUNERS", "TuneResult", "tune"]

PRUNERS = ("median", "halving", "none")
PLANNED_TRIALS = 8       # the default trial budget is the budget left after setup / this many
MIN_TRIAL_SECONDS = 2    # Lightning's max_time counts whole seconds
MIN_AUTO_SECONDS = 30    # a default trial budget shorter than this trains too little to rank settings
STUDY = "stpatch-tune"


@dataclass
class TuneResult:
    """A finished tune: its folder, every trial as a row (see :func:`stpatch.tune.outputs.trial_rows`),
    the best and the default trial's rows (None when none finished), and the files written."""

    out_dir: Path
    rows: list[dict]
    best: dict | None
    default: dict | None
    best_config: Path | None
    trials_csv: Path
    plot: Path | None
    table: str
    trial_seconds: int

    @property
    def improvement(self) -> float | None:
        """How much lower the best validation loss is than the default's, as a share of the default's."""
        if not self.best or not self.default or not self.default["val_loss"]:
            return None
        return 1.0 - self.best["val_loss"] / self.default["val_loss"]


def _pruner(name: str):
    import optuna

    if name == "median":  # no pruning before 3 trials finished, nor before half of a trial's budget
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "halving":  # keep the better half at half of the budget
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=2)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {name!r}")


def _auto_trial_seconds(clock: Budget) -> int:
    """The budget left / PLANNED_TRIALS, less each trial's overhead; when a slow start leaves less than
    MIN_AUTO_SECONDS per trial, fewer trials of MIN_AUTO_SECONDS (as long as two fit)."""
    usable = clock.remaining() - clock.reserve
    seconds = usable / PLANNED_TRIALS - clock.first_overhead
    if seconds < MIN_AUTO_SECONDS:
        seconds = min(MIN_AUTO_SECONDS, usable / 2 - clock.first_overhead)
    return int(seconds)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's and Optuna's per-trial chatter down to warnings; the tuner prints a line per trial."""
    import optuna

    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    verbosity = optuna.logging.get_verbosity()
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        optuna.logging.set_verbosity(verbosity)


def _clock(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _short(point: dict) -> str:
    """``{"model.patch": [2, 8, 8], "train.lr": 0.00123}`` -> ``"patch=2x8x8 lr=0.00123"``."""
    def text(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        return "x".join(map(str, v)) if isinstance(v, list) and len(v) == 3 else outputs._cell(v).replace(" ", "")
    return " ".join(f"{k.split('.', 1)[1]}={text(v)}" for k, v in point.items())


def _data_meta(config: RunConfig) -> dict:
    from stpatch.engine.wiring import data_meta, make_data

    dm = make_data(config)
    dm.setup("fit")
    return data_meta(dm)


def _probe_space(space: SearchSpace, config: RunConfig, default: dict, meta: dict, given: bool,
                 say: Callable[[str], None]) -> SearchSpace:
    """Every choice of a model option, with the other keys at their defaults, must build and run on the
    data's shape: a failing choice is dropped from the default space and an error in a given one."""
    import dataclasses

    problem = check_point(config, {}, meta)
    if problem:
        raise TuneSpaceError(f"the config's own model does not run on this data ({problem}); fix the config first")
    params = []
    for p in space.params:
        if p.key.startswith("model.") and not p.is_range:
            failing = {repr(c): why for c in p.choices if (why := check_point(config, {**default, p.key: c}, meta))}
            if failing and given:
                raise TuneSpaceError(f"search space key {p.key!r}: {', '.join(failing)} do(es) not work with model "
                                     f"{config.model['name']!r} on this data (t_in={meta['t_in']}, shape "
                                     f"{meta['spatial_shape']}): {next(iter(failing.values()))}; remove them from the space")
            if failing:
                say(f"left out {p.key} {', '.join(failing)}: the model does not run with it on this data")
                p = dataclasses.replace(p, choices=tuple(c for c in p.choices if repr(c) not in failing))
        params.append(p)
    return SearchSpace(tuple(params))


def _prepare(config: RunConfig, space: str | Path | dict | None, meta: dict, say: Callable[[str], None]):
    if space is None:
        if meta["kind"] != "grid":
            raise TuneSpaceError("the default search space (patch, widths, depths, lr) is for grid models; for "
                                 f"{meta['kind']} data give --space with the keys to search (e.g. model.time_patch, train.lr)")
        searched = default_space(config, meta["t_in"], tuple(meta["spatial_shape"]))
    elif isinstance(space, dict):
        searched = space_from_dict(space, config)
    else:
        searched = load_space(space, config)
    default = default_point(searched, config, meta)
    searched, notes = with_default(searched, default)
    for note in notes:
        say(note)
    return _probe_space(searched, config, default, meta, space is not None, say), default


def _out_dir(config: RunConfig, out: str | Path | None) -> Path:
    if out is not None:
        return Path(out)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"tune-{config.data.name}-{config.model['name']}-{stamp}"


def _open_study(out: Path, seed: int, pruner: str, planned: int, resume: bool):
    import optuna

    # about half of the trials explore at random before TPE models the space (short budgets give few trials)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(3, min(10, planned // 2)))
    study = optuna.create_study(storage=f"sqlite:///{out / 'study.db'}", study_name=STUDY, direction="minimize",
                                sampler=sampler, pruner=_pruner(pruner), load_if_exists=resume)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)  # a tune killed mid-trial left it running
    return study


def _enqueue_default(study: Any, default: dict, space: SearchSpace) -> None:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING)
    if not any(t.user_attrs.get("default") for t in study.get_trials(deepcopy=False, states=states)):
        encoded = {k: v if space[k].is_range else encode(v) for k, v in default.items()}
        study.enqueue_trial(encoded, user_attrs={"default": True})


def tune(config: RunConfig | dict | str | Path, budget: str | float, *, overrides: list[str] | None = None,
         space: str | Path | dict | None = None, out: str | Path | None = None, trial_budget: str | float | None = None,
         n_trials: int | None = None, pruner: str = "median", val_every: int = 25, val_batches: int = 8,
         score_batches: int | None = None, resume: bool = False, started: float | None = None,
         say: Callable[[str], None] = print) -> TuneResult:
    """Search the config's patch size, width, depth and learning rate within ``budget`` of wall clock.

    Args:
        config: a YAML path, a nested dict or a :class:`RunConfig`; ``overrides`` as ``--set``.
        budget: the whole tune, ``HH:MM:SS`` or seconds, counted from ``started`` (``time.time()``;
            default: now), data setup, probing and the closing files included.
        space: a YAML file or dict (see :mod:`stpatch.tune.space`); None: the default space.
        out: the tune's folder (default ``runs/tune-DATA-MODEL-TIME``).
        trial_budget: training seconds per trial (default: the budget left after setup / 8).
        n_trials: stop after this many trials in this call (default: as many as fit).
        pruner: ``median``, ``halving`` (successive halving) or ``none``.
        val_every: optimiser steps between validations inside a trial (and so between pruning reports).
        val_batches: validation batches per validation inside a trial (the same first ones in every trial).
        score_batches: validation batches of the closing validation that scores a trial (default: the
            config's ``limit_val_batches``, all of the validation split unless the config limits it).
        resume: continue the study in ``out`` with its stored config, space and trial budget.
        say: where progress lines go.
    """

    seconds_total = parse_budget(budget)
    clock = Budget(seconds_total, started if started is not None else time.time())
    # kept for the end: the closing work (table, CSV, plot), a little more on long tunes, and the exit of
    # a process that started before this call (tearing down torch & co. takes about half as long as the
    # imports took, on a busy machine tens of seconds)
    clock.reserve = max(5.0, 0.02 * seconds_total) + 0.5 * clock.elapsed()
    if pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    for name, value in (("--val-every", val_every), ("--val-batches", val_batches), ("--score-batches", score_batches)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive number of steps or batches, got {value}")
    if resume:
        out_dir = Path(out) if out is not None else None
        if out_dir is None or not (out_dir / "tune.yaml").is_file():
            raise FileNotFoundError(f"--resume {out_dir}: no tune.yaml there; is it the folder of a tune?")
        stored = yaml.safe_load((out_dir / "tune.yaml").read_text())
        config, space = load_config(out_dir / "config.yaml"), stored["space"]
        trial_budget, val_every, val_batches, score_batches, pruner = (
            stored[k] for k in ("trial_seconds", "val_every", "val_batches", "score_batches", "pruner"))
        say(f"resuming {out_dir}: the stored config, space and trial budget ({trial_budget} s)")
    else:
        from stpatch.engine.wiring import resolve_config

        config = resolve_config(config, overrides)
        out_dir = _out_dir(config, out)
        if (out_dir / "study.db").exists():
            raise FileExistsError(f"{out_dir} already holds a tune; pass --resume {out_dir} to continue it or choose another --out")
    with _quiet():
        t0 = time.monotonic()
        meta = _data_meta(config)
        data_seconds = time.monotonic() - t0
        searched, default = _prepare(config, space, meta, say)
        # each trial sets its data up again and validates once more; measured after the first trial
        clock.first_overhead = 2 * data_seconds + 5
        seconds = _auto_trial_seconds(clock) if trial_budget is None else int(parse_budget(trial_budget, "--trial-budget"))
        if seconds < MIN_TRIAL_SECONDS or not clock.fits(seconds):
            trial = max(seconds, MIN_TRIAL_SECONDS)
            need = clock.elapsed() + clock.trial_cost(trial) + clock.reserve
            raise ValueError(f"--budget {_clock(clock.seconds)} is too short for one trial: expected at least {need:.0f} s "
                             f"({clock.elapsed():.0f} s already spent on start-up, data and probing the model, a trial of "
                             f"{trial} s training + ~{clock.overhead():.0f} s setup and validation, "
                             f"{clock.reserve:.0f} s for the outputs and the exit), got {clock.seconds:.0f} s; raise --budget"
                             + (" or lower --trial-budget" if trial_budget is not None else
                                f" (the default trial budget is what is left / {PLANNED_TRIALS}, at least {MIN_AUTO_SECONDS} s "
                                "while two trials fit)"))
        out_dir.mkdir(parents=True, exist_ok=True)
        settings = TrialSettings(seconds, val_every, val_batches, score_batches)
        if not resume:
            save_config(config, out_dir / "config.yaml")
            write_text(out_dir / "tune.yaml", yaml.safe_dump({
                "trial_seconds": seconds, "val_every": val_every, "val_batches": val_batches,
                "score_batches": score_batches, "pruner": pruner,
                "space": yaml.safe_load(searched.to_yaml())}, sort_keys=False))
        planned = max(1, int(clock.remaining() // clock.trial_cost(seconds)))
        study = _open_study(out_dir, config.train.seed, pruner, planned, resume)
        _enqueue_default(study, default, searched)
        say(f"tune {config.data.name}/{config.model['name']}: {len(searched.keys)} keys "
            f"({', '.join(searched.keys)}), {seconds} s per trial, about {planned} trials; "
            f"{_clock(clock.remaining())} left; folder {out_dir}")
        ran = 0
        while clock.fits(seconds) and (n_trials is None or ran < n_trials):
            _one_trial(study, searched, config, meta, settings, out_dir, clock, say)
            ran += 1
        return _finish(study, searched, config, out_dir, seconds, clock, say)


def _one_trial(study: Any, space: SearchSpace, config: RunConfig, meta: dict, settings: TrialSettings,
               out_dir: Path, clock: Budget, say: Callable[[str], None]) -> None:
    import optuna

    trial = study.ask()
    point = space.suggest(trial)
    is_default = bool(trial.user_attrs.get("default"))
    started = time.monotonic()
    label = f"#{trial.number}{' (default)' if is_default else ''} {_short(point)}"
    problem = None if is_default else check_point(config, point, meta)
    if problem:  # a combination the model cannot take (e.g. a patch with too many downsamplings)
        trial.set_user_attr("error", problem)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        say(f"{label}: skipped, the model does not run with it ({problem})")
        return
    say(f"{label}: training {settings.seconds} s; {_clock(clock.remaining())} left")
    state, value, note, after_fit = optuna.trial.TrialState.COMPLETE, None, "", None
    try:
        # the default trial runs the config exactly as it is (point_config would only restate its values)
        outcome = run_trial(config, {} if is_default else point, settings, out_dir / "trials" / f"{trial.number:04d}",
                            trial, stop_at=clock.stop_training_at())
        value, trained, after_fit = outcome.value, min(outcome.train_seconds, settings.seconds), outcome.after_fit
        if not math.isfinite(value):
            state, note = optuna.trial.TrialState.FAIL, "no finite validation loss"
    except optuna.TrialPruned as err:
        state, note, trained = optuna.trial.TrialState.PRUNED, str(err), trial.user_attrs.get("train_seconds", 0.0)
    except TrialCut as err:  # the machine slowed down: the deadline stopped it
        state, note, trained = optuna.trial.TrialState.FAIL, str(err), trial.user_attrs.get("train_seconds", 0.0)
        trial.set_user_attr("error", note)
    except (KeyboardInterrupt, SystemExit):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    except Exception as err:  # one trial's crash (e.g. out of memory) is reported, the search goes on
        state, note, trained = optuna.trial.TrialState.FAIL, f"{type(err).__name__}: {err}", 0.0
        trial.set_user_attr("error", note)
    wall = time.monotonic() - started
    trial.set_user_attr("seconds", round(wall, 1))
    clock.record(wall, trained, after_fit)
    study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    best = study.best_trial if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)) else None
    result = f"val {value:.6g}" if state == optuna.trial.TrialState.COMPLETE else f"{state.name.lower()} ({note})"
    steps = trial.user_attrs.get("steps", 0)
    say(f"{label}: {result}, {steps} steps, {wall:.0f} s"
        + (f"; best {best.value:.6g} (#{best.number})" if best else "") + f"; {_clock(clock.remaining())} left")


def _finish(study: Any, space: SearchSpace, config: RunConfig, out_dir: Path, seconds: int, clock: Budget,
            say: Callable[[str], None]) -> TuneResult:
    rows = outputs.trial_rows(study, space)
    complete = [r for r in rows if r["state"] == "complete"]
    best = min(complete, key=lambda r: r["val_loss"]) if complete else None
    defaults = [r for r in complete if r["default"]]
    default = defaults[-1] if defaults else None
    best_config = None
    if best is not None:
        point = {} if best["default"] else {k: best[k] for k in space.keys}
        versus = (f"; the default config reached {default['val_loss']:.6g} (trial #{default['number']})" if default else "")
        header = (f"stpatch tune: best of {len(rows)} trials of {seconds} s training each, trial #{best['number']}, "
                  f"validation loss {best['val_loss']:.6g}{versus}\n"
                  f"searched: {', '.join(space.keys)}; train it: stpatch train --config {out_dir / 'best.yaml'}")
        best_config = outputs.write_best(point_config(config, point), header, out_dir / "best.yaml")
    trials_csv = outputs.write_trials_csv(rows, space, out_dir / "trials.csv")
    title = f"{config.data.name} / {config.model['name']}: validation loss after {seconds} s of training per trial"
    plot = outputs.plot_patch(rows, out_dir / "val_loss_vs_patch.png", title)
    table = outputs.format_table(rows, space)
    result = TuneResult(out_dir, rows, best, default, best_config, trials_csv, plot, table, seconds)
    say(table)
    if best is None:
        say("no trial finished: nothing to compare (see the trials' errors in trials.csv)")
    elif default is not None:
        gain = result.improvement
        say(f"best: trial #{best['number']} val {best['val_loss']:.6g} "
            + ("(the default config itself)" if best["default"] else
               f"vs default #{default['number']} {default['val_loss']:.6g}: {100 * gain:.1f} % lower")
            + f"; {_clock(clock.elapsed())} used of {_clock(clock.seconds)}")
    say(f"wrote {trials_csv}, {best_config}, {plot}, {out_dir / 'study.db'}")
    return result

