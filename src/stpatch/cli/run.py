"""Commands that run the engine: train, evaluate, predict, demo."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from stpatch.cli._common import fail, guard_warnings, print_eval


def train(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (a path, or a shipped name; see `stpatch configs`)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a key: section.key=value (repeatable)."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Where the run goes (default runs/DATA-MODEL-TIME)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this directory from its last checkpoint."),
    max_time: str | None = typer.Option(None, "--max-time", help="Training budget, HH:MM:SS."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    max_epochs: int | None = typer.Option(None, "--max-epochs"),
    accelerator: str | None = typer.Option(None, "--accelerator", help="cpu, gpu, auto."),
    devices: str | None = typer.Option(None, "--devices", help="How many devices (or 'auto')."),
    strategy: str | None = typer.Option(None, "--strategy", help="auto, ddp, ddp_spawn ..."),
    precision: str | None = typer.Option(None, "--precision", help="32-true, bf16-mixed, 16-mixed ..."),
    evaluate_after: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Score the test split when training ends."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html (one page: metrics, curves, "
                                "forecasts, maps) when scoring; --no-report saves its half minute on large runs."),
) -> None:
    """Train a forecaster from a YAML config; checkpoints, metrics and figures go into the run directory."""
    from stpatch.engine.config import ConfigError
    from stpatch.engine.evaluation import evaluate
    from stpatch.engine.training import is_main_process
    from stpatch.engine.training import train as train_run

    # the shortcut flags are spelled-out overrides of the train section
    overrides = list(set_)
    for key, value in [("train.max_time", max_time), ("train.max_steps", max_steps), ("train.max_epochs", max_epochs),
                       ("train.accelerator", accelerator), ("train.devices", devices), ("train.strategy", strategy),
                       ("train.precision", precision)]:
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        if resume is not None:
            if not (resume / "config.yaml").is_file():
                raise FileNotFoundError(f"--resume {resume}: no config.yaml there; is it a run directory?")
            config = resume / "config.yaml"
            overrides.append(f"run_dir={resume}")
        elif run_dir is not None:
            overrides.append(f"run_dir={run_dir}")
        result = train_run(config, overrides, resume=resume is not None)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as err:
        fail(err)
    typer.echo(f"run directory: {result.run_dir}")
    typer.echo(f"best checkpoint: {result.best_checkpoint}")
    if evaluate_after and is_main_process():
        with guard_warnings():
            scores = evaluate(result.run_dir, progress=True, report=report)
        print_eval(scores)


def evaluate(
    run: Path | None = typer.Option(None, "--run", help="A run directory (uses its best checkpoint)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="A checkpoint file."),
    split: str = typer.Option("test", help="test or val."),
    limit_batches: int | None = typer.Option(None, help="Score only the first N batches."),
    json_out: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    strict: bool = typer.Option(False, "--strict", help="Refuse data far outside what training saw (default: warn)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html into the run directory."),
) -> None:
    """Metrics of a trained run on the test split, beside persistence, per lead time and averaged."""
    from stpatch.engine.evaluation import evaluate as evaluate_run

    target = run or checkpoint
    if target is None:
        fail(ValueError("pass --run RUN_DIR or --checkpoint FILE"))
    try:
        with guard_warnings():
            result = evaluate_run(target, split=split, limit_batches=limit_batches, progress=not json_out, strict=strict,
                                  report=report)
    except (FileNotFoundError, ValueError) as err:
        fail(err)
    if json_out:
        typer.echo(json.dumps(result, indent=2, default=float))
    else:
        print_eval(result)


def predict(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint file or run directory."),
    input: str = typer.Option(..., "--input", help=".npy/.npz (canonical layout), NetCDF or CSV with at least t_in steps; "
                              "with --importer, radar files: a quoted glob such as \"radar/*.h5\" or a folder."),
    output: Path = typer.Option(..., "--output", help="Where the forecast goes (same family of format; .nc for radar)."),
    importer: str | None = typer.Option(None, "--importer", help="Read --input as radar files with this pysteps "
                                        "importer (odim_hdf5, mch_gif, fmi_pgm, knmi_hdf5, bom_rf3, ...)."),
    downsample: int | None = typer.Option(None, help="With --importer: block-mean factor, as in training."),
    crop: int | None = typer.Option(None, help="With --importer: centre crop in downsampled pixels, as in training."),
    strict: bool = typer.Option(False, "--strict", help="Refuse input far outside what training saw, or on another "
                                "time step or grid (default: warn)."),
    max_missing: float | None = typer.Option(None, "--max-missing", help="Share of the input steps' values that may be "
                                             "missing (default 0.5, or the training split's share + 0.1)."),
    engine: str = typer.Option("torch", "--engine", help="torch (the checkpoint) or onnx (the export of "
                               "`stpatch export`, through ONNX Runtime)."),
) -> None:
    """Forecast the steps after the end of new data, in physical units; no ground truth needed."""
    from stpatch.engine.prediction import predict as predict_run

    radar = {k: v for k, v in (("downsample", downsample), ("crop", crop)) if v is not None}
    try:
        if radar and importer is None:
            raise ValueError("--downsample and --crop are for radar files; pass --importer as well")
        with guard_warnings():
            forecast = predict_run(checkpoint, input if importer else Path(input), output, importer=importer,
                                   strict=strict, max_missing=max_missing, engine=engine, **radar)
    except (FileNotFoundError, ValueError, ImportError) as err:
        fail(err)
    typer.echo(f"forecast {tuple(forecast.shape)} written to {output}")


def demo(
    minutes: float = typer.Option(4.0, help="Training budget in minutes."),
    run_dir: Path = typer.Option(Path("runs/demo"), "--run-dir"),
    data: str | None = typer.Option(None, help="digits (built in) or moving_mnist (needs the MNIST files)."),
    test_size: int = typer.Option(256, help="Test sequences to score."),
) -> None:
    """Train the default model (stpconv) for a few minutes on moving digits, score it against persistence, draw the forecasts."""
    from stpatch.engine.demo import run_demo

    result = run_demo(minutes=minutes, run_dir=run_dir, data=data, test_size=test_size)
    print_eval(result)
    typer.echo(f"run directory: {result['run_dir']} (config.yaml, checkpoints/, metrics.csv, eval.md, report.html, figures/)")
