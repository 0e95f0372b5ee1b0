"""Commands that describe what is there: models, configs, datasets (list, info, download), profile, info RUN."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from stpatch.cli._common import fail


def models() -> None:
    """The registered forecasters."""
    from stpatch.models import get_model_entry, list_models

    layouts = {"grid": "(B, T, C, H, W)", "sensor": "(B, T, N, C)"}
    for name in list_models():
        entry = get_model_entry(name)
        shapes = " or ".join(layouts[k] for k in entry.kinds)
        typer.echo(f"{name:16s} {shapes:34s} {entry.description}")


def configs() -> None:
    """The shipped YAML configs (pass a name to `stpatch train --config`)."""
    from stpatch.engine.wiring import shipped_configs

    for path in shipped_configs():
        typer.echo(path.name)


def datasets_list() -> None:
    """Named data sets: field, source, sample shape, split, metrics and baselines (the README's table)."""
    from stpatch.data import dataset_table

    typer.echo(dataset_table(format="text"))


def datasets_info(name: str) -> None:
    """Source, split, shapes, metrics and baselines of a named data set."""
    from stpatch.data import info

    try:
        entry = info(name)
    except (KeyError, ValueError) as err:
        fail(err)
    fields = entry.__dict__ if hasattr(entry, "__dict__") else dict(entry)
    for key, value in fields.items():
        typer.echo(f"{key}: {value}")


def datasets_download(
    name: str, data_dir: Path | None = typer.Option(None, "--data-dir", help="Default: $STPATCH_DATA_DIR.")
) -> None:
    """Fetch a data set's original files from its public source (needs internet), checking checksums."""
    from stpatch.data import download

    try:
        paths = download(name, data_dir)
    except Exception as err:  # network errors come in many types; say what failed
        fail(err)
    for path in paths or []:
        typer.echo(f"have {path}")


def profile(
    model: str = typer.Argument(..., help="A registered model name, or a run directory: then the latency of "
                                "the torch and onnx engines on it (needs `stpatch export RUN`)."),
    height: int = typer.Option(64, "--height"), width: int = typer.Option(64, "--width"),
    channels: int = typer.Option(1, "--channels"), t_in: int = typer.Option(10, "--t-in"), t_out: int = typer.Option(10, "--t-out"),
    nodes: int = typer.Option(207, "--nodes", help="Sensors, for sensor models."),
    batch: int = typer.Option(1, "--batch"),
    repeats: int = typer.Option(20, "--repeats", help="For a run: forecasts timed per engine (median reported)."),
) -> None:
    """Parameters, FLOPs per sample, peak memory and latency of one forward pass; for a run directory,
    the forecast latency through PyTorch and through ONNX Runtime."""
    from stpatch.models import create_model, profile_model

    if Path(model).exists():
        from stpatch.deploy.latency import compare_engines

        try:
            report = compare_engines(model, batch=batch, repeats=repeats)
        except (FileNotFoundError, ValueError, ImportError) as err:
            fail(err)
        typer.echo(f"forecast latency of {model}, batch {batch}, median of {repeats} (scaling included)")
        for name, row in report.items():
            typer.echo(f"  {name:6s} median {row['median_ms']:.3f} ms   p90 {row['p90_ms']:.3f} ms")
        typer.echo(f"  onnx / torch: {report['onnx']['median_ms'] / report['torch']['median_ms']:.2f}")
        return

    try:
        net = create_model(model, in_channels=channels, t_in=t_in, t_out=t_out, num_nodes=nodes)
    except ValueError as err:
        fail(err)
    kind = getattr(net, "kind", "grid")
    shape = (batch, t_in, channels, height, width) if kind == "grid" else (batch, t_in, nodes, channels)
    report = profile_model(net, shape)
    typer.echo(f"{model} on input {shape}")
    for key, value in report.items():
        text = f"{value:,}" if isinstance(value, int) else f"{value:.4g}" if isinstance(value, float) else value
        typer.echo(f"  {key}: {text}")


def info(
    run: Path = typer.Argument(..., help="A run directory or checkpoint file."),
    json_out: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """A trained run: its model, data and the data profile of its training split (what input it accepts)."""
    from stpatch.engine.reports import format_run_info
    from stpatch.engine.runs import run_info

    try:
        about = run_info(run)
    except (FileNotFoundError, ValueError) as err:
        fail(err)
    typer.echo(json.dumps(about, indent=2, default=str) if json_out else format_run_info(about))
