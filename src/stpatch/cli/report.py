"""Commands that explain a run: ``report`` (one HTML page) and ``features`` (region features and their maps)."""

from __future__ import annotations

from pathlib import Path

import typer

from stpatch.cli._common import fail, guard_warnings


def report(
    run: Path = typer.Argument(..., help="A run directory of `stpatch train`."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where the page goes (default RUN/report.html)."),
    analyse: bool = typer.Option(True, "--analyse/--no-analyse", help="Compute the attention importance and region-"
                                 "feature maps from test batches first (needs the run's data)."),
    limit_batches: int = typer.Option(4, "--limit-batches", help="Test batches the maps are computed from."),
) -> None:
    """One self-contained report.html: metrics beside the baselines, error by lead time, losses, forecasts, maps."""
    from stpatch.report import write_report

    try:
        with guard_warnings():
            path = write_report(run, analyse=analyse, limit_batches=limit_batches, path=output)
    except (FileNotFoundError, ValueError) as err:
        fail(err)
    typer.echo(f"report: {path}")


def features(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A run directory or checkpoint file."),
    input: str | None = typer.Option(None, "--input", help="Data to pool over (any `predict --input` format; every "
                                     "window of it); default: the run's own test split."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Features file: .nc for grids, .csv or .parquet for "
                                       "sensors (default RUN/features/features.nc|csv)."),
    k: int | None = typer.Option(None, "--k", help="k-means clusters (default: chosen by silhouette)."),
    similar_to: str | None = typer.Option(None, "--similar-to", help="List the regions most like this one: 'iy,ix' "
                                          "for grids, a sensor index for networks."),
    limit_batches: int | None = typer.Option(None, "--limit-batches", help="Pool at most N batches."),
) -> None:
    """Spatial features of every region (grid patch or sensor), pooled over windows; PCA-RGB and cluster maps."""
    from stpatch.analysis.feature_maps import save_feature_maps
    from stpatch.analysis.features import features as region_features
    from stpatch.analysis.inputs import as_run

    try:
        with guard_warnings():
            run = as_run(checkpoint)
            data, split = None, "test"
            if input is not None:
                from stpatch.data.adapters import read_array_file

                data, split = read_array_file(input, kind=run.meta["kind"]), "all"
            rf = region_features(run, data, split=split, limit_batches=limit_batches)
    except (FileNotFoundError, ValueError) as err:
        fail(err)
    folder = run.checkpoint.parent.parent / "features"
    path = rf.save(output or folder / ("features.nc" if rf.kind == "grid" else "features.csv"))
    typer.echo(f"features: {path} ({' x '.join(map(str, rf.values.shape))}, {rf.windows} windows)")
    for picture in save_feature_maps(rf, path.parent, k):
        typer.echo(f"figure: {picture}")
    if similar_to is not None:
        region = tuple(int(v) for v in similar_to.split(",")) if "," in similar_to else int(similar_to)
        for index, sim in rf.similar(region, k=6):
            where = tuple(int(i) for i in divmod(index, rf.values.shape[1])) if rf.kind == "grid" else index
            typer.echo(f"{where}\t{sim:.3f}")
