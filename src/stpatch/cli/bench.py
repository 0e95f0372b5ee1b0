"""The ``bench`` command: accuracy under a fixed budget (see ``stpatch.bench``)."""

from __future__ import annotations

from pathlib import Path

import typer

from stpatch.bench.suites import SUITES, suite_names
from stpatch.cli._common import fail


def bench(
    # the help is built from the suite table, so it offers exactly the suites that run
    suite: str = typer.Argument("all", help=f"{', '.join(SUITES)}, or all; or serve (the HTTP service under load); or anomaly (injected events); or grids (memory and step time against grid size); or scale (training from a store larger than memory)."),
    budget: str | None = typer.Option(None, help="Training budget per model, HH:MM:SS "
                                       "(default: the suite's designed budget, 20 minutes; carphone 5)."),
    quick: bool = typer.Option(False, help="Seconds-long smoke run on tiny subsets."),
    write: bool = typer.Option(False, help="Write the tables into BENCHMARKS.md."),
    run: Path | None = typer.Option(None, "--run", help="serve: the run to serve (exported for the onnx engine)."),
    seconds: float = typer.Option(20.0, "--seconds", help="serve: load time per number of clients."),
    clients: str = typer.Option("1,8,32", "--clients", help="serve: numbers of concurrent clients."),
    engine: str = typer.Option("onnx", "--engine", help="serve: onnx or torch."),
    size_gb: float | None = typer.Option(None, "--size-gb", help="scale: the store's size (default 1.5 x RAM)."),
    steps: int | None = typer.Option(None, "--steps", help="scale: training steps per run (default 20)."),
    store_dir: Path | None = typer.Option(None, "--dir", help="scale: where the store is written (default: temp)."),
    keep: bool = typer.Option(False, "--keep", help="scale: keep the store instead of deleting it."),
    seeds: str | None = typer.Option(None, "--seeds", help="accuracy suites: train with each seed (0-4, or 0,3,7) and report the spread over seeds."),
) -> None:
    """Accuracy under a fixed budget against the baselines, and speed (see BENCHMARKS.md); `serve`: requests/s,
    latency, peak memory and 5xx of `stpatch serve` under 1, 8 and 32 concurrent clients on 127.0.0.1;
    `anomaly`: ROC-AUC of flagging injected events on moving digits and the real clip (training budget: --budget);
    `grids`: peak memory and step time of a training step of stpnet and convlstm on 64x64 ... 512x512 grids;
    `scale`: peak memory and windows/s of training from a Zarr store of 1.5 x RAM, beside an in-memory array."""
    if suite == "serve":  # not an accuracy suite: handled before their names are checked
        from stpatch.bench.serve import bench_serve, format_serve_table

        try:
            if run is None:
                raise ValueError("bench serve needs --run RUN_DIR (a trained run; `stpatch export RUN` for onnx)")
            counts = tuple(int(c) for c in clients.split(","))
            rows = bench_serve(run, seconds=seconds, clients=counts, engine=engine)
        except (FileNotFoundError, ValueError, RuntimeError) as err:
            fail(err)
        typer.echo(format_serve_table(rows, run, engine))
        return
    if suite == "anomaly":  # not an accuracy suite: flagging injected events, beside two baselines
        from stpatch.bench.anomaly import bench_anomaly

        try:
            typer.echo(bench_anomaly(budget=budget, quick=quick, write=write))
        except (FileNotFoundError, ValueError) as err:
            fail(err)
        return
    if suite == "grids":  # not an accuracy suite: memory and time against grid size (stpatch.bench.grids)
        from stpatch.bench.grids import bench_grids

        typer.echo(bench_grids(quick=quick, write=write))
        return
    if suite == "scale":  # not an accuracy suite: training from a store larger than memory (stpatch.bench.scale)
        from stpatch.bench.scale import run_scale

        try:
            typer.echo(run_scale(size_gb=size_gb, train_steps=steps, directory=store_dir, quick=quick, keep=keep,
                                 write=write))
        except (ValueError, RuntimeError) as err:
            fail(err)
        return
    from stpatch.bench import run_benchmarks
    from stpatch.bench.seeds import parse_seeds

    try:
        suite_names(suite)  # an unknown name (or seed list) fails before anything trains
        seed_list = parse_seeds(seeds) if seeds is not None else None
    except ValueError as err:
        fail(err)
    typer.echo(run_benchmarks(suite, budget=budget, quick=quick, write=write, seeds=seed_list))
