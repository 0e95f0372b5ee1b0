"""The ``tune`` command: search patch size, width, depth and learning rate under a wall-clock budget
(see :mod:`stpatch.tune`)."""

from __future__ import annotations

from pathlib import Path

import typer

from stpatch.cli._common import fail


def tune(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config to tune (a path, or a shipped name)."),
    budget: str = typer.Option(..., "--budget", help="Wall clock for the whole tune, HH:MM:SS (start-up included)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a key of the config: section.key=value (repeatable)."),
    space: Path | None = typer.Option(None, "--space", help="YAML search space: config keys -> choices or "
                                      "{low, high, log} (default: patch, widths, depths, lr)."),
    out: Path | None = typer.Option(None, "--out", help="The tune's folder (default runs/tune-DATA-MODEL-TIME)."),
    trial_budget: str | None = typer.Option(None, "--trial-budget", help="Training time per trial, HH:MM:SS or "
                                            "seconds (default: the budget left after setup / 8)."),
    n_trials: int | None = typer.Option(None, "--n-trials", help="At most this many trials (default: as many as fit)."),
    pruner: str = typer.Option("median", "--pruner", help="median, halving (successive halving) or none."),
    val_every: int = typer.Option(25, "--val-every", help="Training steps between validations (pruning reports)."),
    val_batches: int = typer.Option(8, "--val-batches", help="Validation batches per validation during a trial "
                                    "(pruning reports)."),
    score_batches: int | None = typer.Option(None, "--score-batches", help="Validation batches of the closing "
                                             "validation that scores a trial (default: the config's limit_val_batches)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the tune in this folder (its study.db)."),
) -> None:
    """Search patch size (pt, ph, pw), width, depth and learning rate with short trials on the validation
    split; writes trials.csv, best.yaml (for `stpatch train --config`), a plot and the study (SQLite)."""
    from stpatch.engine.config import ConfigError
    from stpatch.tune.budget import process_start
    from stpatch.tune.search import tune as run_tune

    if config is None and resume is None:
        fail(ValueError("pass --config X.yaml (or --resume TUNE_DIR)"))
    try:
        result = run_tune(config, budget, overrides=list(set_), space=space, out=resume or out,
                          trial_budget=trial_budget, n_trials=n_trials, pruner=pruner, val_every=val_every,
                          val_batches=val_batches, score_batches=score_batches, resume=resume is not None,
                          started=process_start(), say=typer.echo)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as err:
        fail(err)
    if result.best is None:
        raise typer.Exit(code=1)
