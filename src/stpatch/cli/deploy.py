"""Commands that deploy a run: ``export`` (ONNX) and ``serve`` (the HTTP forecasting service)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from stpatch.cli._common import fail


def export(
    run: Path = typer.Argument(..., help="A run directory or checkpoint file."),
    format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where model.onnx goes (default RUN/export/)."),
    dynamo: bool = typer.Option(False, "--dynamo", help="Use torch's dynamo exporter (slower; needs onnxscript)."),
) -> None:
    """Export a trained run to ONNX (dynamic batch) with a JSON sidecar; checks parity with PyTorch."""
    try:
        from stpatch.deploy.export import export as export_run

        path = export_run(run, output, format=format, dynamo=dynamo)
    except (FileNotFoundError, ValueError, ImportError) as err:
        fail(err)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    typer.echo(f"model: {path}")
    typer.echo(f"sidecar: {path.with_suffix('.json')}")
    typer.echo(f"input {sidecar['layout']} = {sidecar['input_shape']}, inputs {sidecar['inputs']}; "
               f"parity with PyTorch: max abs {sidecar['parity']['max_abs_diff']:.2g} (model units)")


def serve(
    run: Path = typer.Argument(..., help="A run directory (or checkpoint; the onnx engine needs `stpatch export`)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    engine: str = typer.Option("onnx", "--engine", help="onnx (the export) or torch (the checkpoint)."),
    max_batch: int = typer.Option(32, "--max-batch", help="Most windows forecast in one model call."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="How long a request waits for others to batch with."),
    max_queue: int = typer.Option(256, "--max-queue", help="Requests waiting at most; more get 503."),
    max_body_mb: float = typer.Option(16.0, "--max-body-mb", help="Largest request body, MiB."),
) -> None:
    """Serve forecasts over HTTP: GET /health, GET /v1/model, POST /v1/forecast (JSON or .npy)."""
    try:
        from stpatch.deploy.serve import ServeOptions, run_server

        options = ServeOptions(max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue,
                               max_body_bytes=int(max_body_mb * 2**20))
        run_server(run, host=host, port=port, engine=engine, options=options)
    except (FileNotFoundError, ValueError, ImportError) as err:
        fail(err)
