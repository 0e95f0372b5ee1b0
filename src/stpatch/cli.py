"""The ``stpatch`` command: train, evaluate, predict, demo, models, datasets, profile, bench."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Spatio-temporal forecasting with spacetime patches.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Named data sets: list, describe, download.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
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
) -> None:
    """Train a forecaster from a YAML config; checkpoints, metrics and figures go into the run directory."""
    from stpatch.engine import runner
    from stpatch.engine.config import ConfigError

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
        result = runner.train(config, overrides, resume=resume is not None)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as err:
        _fail(err)
    typer.echo(f"run directory: {result.run_dir}")
    typer.echo(f"best checkpoint: {result.best_checkpoint}")
    if evaluate_after and _is_main_process():
        _print_eval(runner.evaluate(result.run_dir, progress=True))


def _is_main_process() -> bool:
    import os

    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("RANK", "0") == "0"


def _print_eval(result: dict) -> None:
    from stpatch.engine.runner import format_eval_table

    typer.echo(format_eval_table(result))
    for path in result.get("figures", []):
        typer.echo(f"figure: {path}")


@app.command()
def evaluate(
    run: Path | None = typer.Option(None, "--run", help="A run directory (uses its best checkpoint)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="A checkpoint file."),
    split: str = typer.Option("test", help="test or val."),
    limit_batches: int | None = typer.Option(None, help="Score only the first N batches."),
    json_out: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Metrics of a trained run on the test split, beside persistence, per lead time and averaged."""
    from stpatch.engine import runner

    target = run or checkpoint
    if target is None:
        _fail(ValueError("pass --run RUN_DIR or --checkpoint FILE"))
    try:
        result = runner.evaluate(target, split=split, limit_batches=limit_batches, progress=not json_out)
    except (FileNotFoundError, ValueError) as err:
        _fail(err)
    if json_out:
        typer.echo(json.dumps(result, indent=2, default=float))
    else:
        _print_eval(result)


@app.command()
def predict(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint file or run directory."),
    input: Path = typer.Option(..., "--input", help=".npy/.npz (canonical layout), NetCDF or CSV with at least t_in steps."),
    output: Path = typer.Option(..., "--output", help="Where the forecast goes (same family of format)."),
) -> None:
    """Forecast the steps after the end of new data, in physical units; no ground truth needed."""
    from stpatch.engine import runner

    try:
        forecast = runner.predict(checkpoint, input, output)
    except (FileNotFoundError, ValueError) as err:
        _fail(err)
    typer.echo(f"forecast {tuple(forecast.shape)} written to {output}")


@app.command()
def models() -> None:
    """The registered forecasters."""
    from stpatch.models import get_model_entry, list_models

    layouts = {"grid": "(B, T, C, H, W)", "sensor": "(B, T, N, C)"}
    for name in list_models():
        entry = get_model_entry(name)
        shapes = " or ".join(layouts[k] for k in entry.kinds)
        typer.echo(f"{name:16s} {shapes:34s} {entry.description}")


@app.command()
def configs() -> None:
    """The shipped YAML configs (pass a name to `stpatch train --config`)."""
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        typer.echo(path.name)


@datasets_app.command("list")
def datasets_list() -> None:
    """Named data sets and their sample shapes."""
    from stpatch.data import info, list_datasets

    for name in list_datasets():
        entry = info(name)
        typer.echo(f"{name:14s} {getattr(entry, 'sample_shape', '')!s:28s} {getattr(entry, 'description', '')}")


@datasets_app.command("info")
def datasets_info(name: str) -> None:
    """Source, split, shapes, metrics and baselines of a named data set."""
    from stpatch.data import info

    try:
        entry = info(name)
    except (KeyError, ValueError) as err:
        _fail(err)
    fields = entry.__dict__ if hasattr(entry, "__dict__") else dict(entry)
    for key, value in fields.items():
        typer.echo(f"{key}: {value}")


@datasets_app.command("download")
def datasets_download(
    name: str, data_dir: Path | None = typer.Option(None, "--data-dir", help="Default: $STPATCH_DATA_DIR.")
) -> None:
    """Fetch a data set's original files from its public source (needs internet), checking checksums."""
    from stpatch.data import download

    try:
        paths = download(name, data_dir)
    except Exception as err:  # network errors come in many types; say what failed
        _fail(err)
    for path in paths or []:
        typer.echo(f"have {path}")


@app.command()
def profile(
    model: str = typer.Argument(..., help="A registered model name."),
    height: int = typer.Option(64, "--height"), width: int = typer.Option(64, "--width"),
    channels: int = typer.Option(1, "--channels"), t_in: int = typer.Option(10, "--t-in"), t_out: int = typer.Option(10, "--t-out"),
    nodes: int = typer.Option(207, "--nodes", help="Sensors, for sensor models."),
    batch: int = typer.Option(1, "--batch"),
) -> None:
    """Parameters, FLOPs per sample, peak memory and latency of one forward pass."""
    from stpatch.models import create_model, profile_model

    try:
        net = create_model(model, in_channels=channels, t_in=t_in, t_out=t_out, num_nodes=nodes)
    except ValueError as err:
        _fail(err)
    kind = getattr(net, "kind", "grid")
    shape = (batch, t_in, channels, height, width) if kind == "grid" else (batch, t_in, nodes, channels)
    report = profile_model(net, shape)
    typer.echo(f"{model} on input {shape}")
    for key, value in report.items():
        text = f"{value:,}" if isinstance(value, int) else f"{value:.4g}" if isinstance(value, float) else value
        typer.echo(f"  {key}: {text}")


@app.command()
def demo(
    minutes: float = typer.Option(4.0, help="Training budget in minutes."),
    run_dir: Path = typer.Option(Path("runs/demo"), "--run-dir"),
    data: str | None = typer.Option(None, help="digits (built in) or moving_mnist (needs the MNIST files)."),
    test_size: int = typer.Option(256, help="Test sequences to score."),
) -> None:
    """Train stpnet for a few minutes on moving digits, score it against persistence, draw the forecasts."""
    from stpatch.engine.demo import run_demo

    result = run_demo(minutes=minutes, run_dir=run_dir, data=data, test_size=test_size)
    _print_eval(result)
    typer.echo(f"run directory: {run_dir} (config.yaml, checkpoints/, metrics.csv, eval.md, figures/)")


@app.command()
def bench(
    suite: str = typer.Argument("all", help="patches, models, moving_mnist, radar, los_loop, era5_uk_t2m, or all."),
    budget: str | None = typer.Option(None, help="Training budget per model, HH:MM:SS."),
    quick: bool = typer.Option(False, help="Seconds-long smoke run on tiny subsets."),
    write: bool = typer.Option(False, help="Write the tables into BENCHMARKS.md."),
) -> None:
    """Accuracy under a fixed budget against the baselines, and speed (see BENCHMARKS.md)."""
    from stpatch.bench import run_benchmarks

    typer.echo(run_benchmarks(suite, budget=budget, quick=quick, write=write))


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted; the last checkpoint is kept, continue with `stpatch train --resume RUN_DIR`", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
