"""Evaluating a trained run beside the baselines, on exactly the same windows, with sample figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from stpatch.atomic import write_json, write_text
from stpatch.engine.module import ForecastModule
from stpatch.engine.reports import format_eval_table
from stpatch.engine.runs import check_data_matches, load_run
from stpatch.engine.wiring import make_data


def evaluate(
    run_or_checkpoint: str | Path,
    split: str = "test",
    limit_batches: int | None = None,
    baselines: list[str] | None = None,
    write: bool = True,
    figures: bool = True,
    progress: bool = False,
    data: Any = None,
    strict: bool = False,
    report: bool = True,
) -> dict:
    """Score a trained run on its test split beside the baselines, on exactly the same windows.

    Returns a dict with ``suite``, ``windows``, ``per_horizon[name][metric] -> list`` (one value per
    lead time, physical units) and ``mean[name][metric]`` for the model and each baseline.
    Writes ``eval.json`` and ``eval.md`` (and figures, and ``report.html`` unless ``report=False``) into the
    run directory when ``write``; a report that fails only logs a warning.
    ``data`` is the user's ``SpatioTemporalData`` when the run was trained on one.

    The split passes the data guard (:mod:`stpatch.data.guard`) first: Inf and physically impossible
    values are errors; values far outside what training saw are a warning, an error with ``strict``.
    """
    from stpatch.data import SpatioTemporalData, guard
    from stpatch.metrics import METRIC_SUITES, MetricAccumulator, summarize

    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val' (the held-out windows), got {split!r}; "
                         "the training windows are not scored")
    run = load_run(run_or_checkpoint)
    config = run.config
    baselines = list(config.eval.baselines if baselines is None else baselines)
    limit_batches = limit_batches if limit_batches is not None else config.eval.limit_batches
    if data is not None:
        data = guard.conform(data, run.meta, run.profile, strict=strict, who="the evaluation data")
    dm = make_data(config, data)
    # batches are scaled with the scaler the run trained with (not one refitted on this data's train split)
    dm.load_state_dict({"scaler": run.scaler.state_dict()})
    dm.setup("test")
    check_data_matches(run.meta, dm, run.checkpoint)
    if isinstance(dm.data, SpatioTemporalData):  # generated data (moving digits) are in range by construction
        guard.check_values(dm.data, run.profile, dm.ranges[split], strict=strict, who=f"the {split} split")
    loader = {"test": dm.test_dataloader, "val": dm.val_dataloader}[split]()
    # the config's suite wins over the data's (a field such as "precip", or "radar" from the radar data)
    suite = config.eval.suite or run.meta.get("suite") or ("video" if run.meta["kind"] == "grid" else "sensor")
    model_name = config.model["name"]
    forecasters = {model_name: run.module}
    for name in baselines:
        if name != model_name:
            forecasters[name] = _baseline(name, run.meta, dm)
    extra_kw = _suite_arguments(suite, dm, run.meta)
    # ACC needs a climatology: without one from the data, the diurnal climatology of the training split
    climatology, metric_names = None, suite
    wants_acc = suite == "weather" or (not isinstance(suite, str) and "lat_weighted_acc" in suite)
    if wants_acc and "climatology" not in extra_kw and "lat" in extra_kw:
        climatology = forecasters.get("climatology") or _baseline("climatology", run.meta, dm)
        metric_names = list(METRIC_SUITES["weather"]) if suite == "weather" else suite
    accumulators = {name: MetricAccumulator(metric_names, **extra_kw) for name in forecasters}
    sample = sample_input = None
    windows = 0
    iterator = _progress(loader, limit_batches, progress, f"evaluate {model_name}")
    with torch.no_grad():
        for i, batch in enumerate(iterator):
            if limit_batches is not None and i >= limit_batches:
                break
            target = run.scaler.inverse_transform(batch["y"])
            mask = batch.get("y_mask")
            clim = run.scaler.inverse_transform(climatology(batch)) if climatology is not None else None
            for name, fc in forecasters.items():
                pred = run.scaler.inverse_transform(fc(batch))
                accumulators[name].update(pred, target, mask=mask, climatology=clim)
                if sample is None and name == model_name:
                    sample = (run.scaler.inverse_transform(batch["x"])[0].numpy(), target[0].numpy(), pred[0].numpy())
                    sample_input = batch["x"][:1]
            windows += batch["x"].shape[0]
    if windows == 0:
        raise ValueError(f"the {split} split of {config.data.name} holds no windows of {run.meta['t_in']}+{run.meta['t_out']} steps")
    per_horizon = {name: acc.compute() for name, acc in accumulators.items()}
    result = {
        "model": model_name,
        "dataset": config.data.name,
        "suite": suite,
        "split": split,
        "windows": windows,
        "checkpoint": str(run.checkpoint),
        "per_horizon": per_horizon,
        "mean": {name: summarize(values) for name, values in per_horizon.items()},
    }
    run_dir = run.checkpoint.parent.parent
    if write:
        write_json(run_dir / "eval.json", result)
        write_text(run_dir / "eval.md", format_eval_table(result))
    if figures and sample is not None:
        paths = _sample_figures(run_dir / "figures", run.meta["kind"], *sample)
        if run.meta["kind"] == "grid":
            from stpatch.analysis.attention import attention_regions, save_attention_figure

            importance = attention_regions(run.module.model, sample_input)
            if importance is not None:
                paths.append(save_attention_figure(sample[0], importance[0], run_dir / "figures" / "attention.png"))
        result["figures"] = [str(p) for p in paths]
    if write and report:
        _write_report(run_dir, data, analyse=figures)
    return result


def _write_report(run_dir: Path, data: Any, analyse: bool) -> None:
    """``report.html`` from the files just written, with the importance and feature maps of two test
    batches when ``analyse`` (a failure is a warning: the scores are already safe)."""
    import logging

    try:
        from stpatch.report import write_report

        write_report(run_dir, analyse=analyse, limit_batches=2, data=data)
    except Exception as err:  # noqa: BLE001 - the report is a convenience, never a reason to fail a run
        logging.getLogger(__name__).warning("could not write %s: %s", run_dir / "report.html", err)


def _steps_per_day(dm) -> int:
    """Time-of-day slots for a diurnal climatology: one per step of a sub-daily series, else 1."""
    import pandas as pd

    step = getattr(getattr(dm, "info", None), "step", None)
    try:
        per_day = pd.Timedelta("1D") / pd.Timedelta(step)
    except (ValueError, TypeError):
        return 1
    return int(round(per_day)) if 1 < per_day <= 24 * 60 else 1


def _baseline(name: str, meta: dict, dm) -> ForecastModule:
    """A baseline forecaster; ``climatology`` is fitted on the training split (by time of day when known)."""
    options: dict[str, Any] = {"name": name}
    if name == "climatology":
        options["slots"] = _steps_per_day(dm)
    module = ForecastModule(options, meta, {}).eval()
    if hasattr(module.model, "fit"):
        dm.setup("fit")
        module.model.fit(dm.train_dataloader())
    return module


def _suite_arguments(suite: str, dm, meta: dict) -> dict:
    """Keyword arguments of the metric accumulator: null handling, latitudes ``(H,)``, climatology."""
    kw: dict[str, Any] = {}
    if suite == "sensor":
        # the data module already masks its declared nulls (y_mask); true zeros stay scored
        kw["null_value"] = float("nan")
    if meta.get("lat") is not None and meta["kind"] == "grid":
        kw["lat"] = torch.tensor(meta["lat"], dtype=torch.float32)
        clim = getattr(dm, "climatology", None)
        if clim is not None:
            kw["climatology"] = torch.as_tensor(np.asarray(clim), dtype=torch.float32)
    return kw


def _progress(loader, limit: int | None, enabled: bool, desc: str):
    if not enabled:
        return loader
    from tqdm.auto import tqdm

    total = len(loader) if hasattr(loader, "__len__") else None
    if limit is not None and total is not None:
        total = min(total, limit)
    return tqdm(loader, total=total, desc=desc, unit="batch")


def _sample_figures(folder: Path, kind: str, inputs, truth, forecast) -> list[Path]:
    """Pictures of one window: ``inputs`` ``(T_in, ...)``, ``truth`` and ``forecast`` ``(T_out, ...)``."""
    from stpatch.analysis.figures import save_forecast_gif, save_forecast_strip, save_sensor_plot

    if kind == "sensor":
        return [save_sensor_plot(inputs, truth, forecast, folder / "forecast_sensors.png")]
    return [save_forecast_strip(inputs, truth, forecast, folder / "forecast_strip.png"),
            save_forecast_gif(truth, forecast, folder / "forecast.gif")]
