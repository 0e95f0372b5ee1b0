"""train / evaluate / predict: the end-to-end job, from Python (the `stpatch` command calls these).

A run directory holds everything a run made::

    RUN_DIR/config.yaml              the resolved config
    RUN_DIR/checkpoints/best.ckpt    lowest validation loss (atomically written)
    RUN_DIR/checkpoints/last.ckpt    the latest state, for --resume
    RUN_DIR/metrics.csv              per-step / per-epoch losses (Lightning CSV logger)
    RUN_DIR/tensorboard/             the same for TensorBoard
    RUN_DIR/eval.json, eval.md       test metrics of the model beside the baselines
    RUN_DIR/figures/                 forecast strip (PNG) and animation (GIF)
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from stpatch.engine.checkpoint import AtomicCheckpointIO, read_checkpoint
from stpatch.engine.config import (
    RunConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    parse_max_time,
    save_config,
)
from stpatch.engine.module import ForecastModule

log = logging.getLogger("stpatch")

# Lightning chatters about things that are expected on a CPU laptop; keep the console readable.
for pattern in (".*does not have many workers.*", ".*GPU available but not used.*", ".*LeafSpec.*",
                ".*number of training batches.*", ".*`isinstance.*treespec.*", ".*Experiment logs directory.*"):
    warnings.filterwarnings("ignore", message=pattern)


@dataclass
class TrainResult:
    """What :func:`train` made: the run directory, its checkpoints and the final losses."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    metrics: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- data


def make_data(config: RunConfig, data: Any = None):
    """The STDataModule for the ``data`` section of a config.

    ``data`` (a ``SpatioTemporalData`` from the adapters) replaces the named data set, so that a
    user's own series trains with the same settings.
    """
    from stpatch.data import make_datamodule

    d = config.data
    kwargs: dict[str, Any] = dict(t_in=d.t_in, t_out=d.t_out, batch_size=d.batch_size, stride=d.stride,
                                  num_workers=d.num_workers, seed=config.train.seed)
    if d.split is not None:
        kwargs["split"] = d.split if isinstance(d.split, str) else tuple(d.split)
    if d.scaler is not None:
        kwargs["scaler"] = d.scaler
    if d.data_dir is not None:
        kwargs["data_dir"] = d.data_dir
    return make_datamodule(d.name if data is None else data, **kwargs, **d.options)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def data_meta(dm) -> dict:
    """What a checkpoint must know of its data: layout, sizes, graph, latitudes, metric suite."""
    info = getattr(dm, "info", None)
    return {
        "kind": dm.kind,
        "in_channels": int(dm.in_channels),
        "t_in": int(dm.t_in),
        "t_out": int(dm.t_out),
        "spatial_shape": [int(s) for s in dm.spatial_shape],
        "num_nodes": int(dm.num_nodes) if dm.kind == "sensor" else None,
        "coords": _plain(dm.coords) if dm.kind == "sensor" and dm.coords is not None else None,
        "adjacency": _plain(dm.adjacency) if getattr(dm, "adjacency", None) is not None else None,
        "lat": _plain(getattr(dm, "lat", None)),
        "suite": getattr(info, "field", None) if info is not None else None,
        "dataset": getattr(info, "name", None) if info is not None else None,
    }


# --------------------------------------------------------------------------- train


def _run_dir(config: RunConfig) -> Path:
    if config.run_dir:
        return Path(config.run_dir)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.data.name}-{config.model['name']}-{stamp}"


def _trainer(config: RunConfig, run_dir: Path, callbacks: list, enable_progress: bool) -> pl.Trainer:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    t = config.train
    loggers = [CSVLogger(run_dir, name="", version="")]
    try:
        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version="", default_hp_metric=False))
    except ModuleNotFoundError:  # tensorboard is a dependency, but keep training if it is missing
        pass
    if enable_progress:
        from lightning.pytorch.callbacks import TQDMProgressBar

        callbacks = [*callbacks, TQDMProgressBar(refresh_rate=10)]
    return pl.Trainer(
        default_root_dir=run_dir,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        max_time=parse_max_time(t.max_time),
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        precision=t.precision,
        gradient_clip_val=t.gradient_clip_val or None,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        deterministic=t.deterministic,
        logger=loggers,
        callbacks=callbacks,
        enable_progress_bar=enable_progress,
        enable_model_summary=False,
        log_every_n_steps=10,
        plugins=[AtomicCheckpointIO()],
        num_sanity_val_steps=0,
    )


def resolve_config(config: RunConfig | dict | str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """A validated :class:`RunConfig` from a config object, nested dict or YAML path, plus overrides."""
    if isinstance(config, (str, Path)):
        return load_config(config, overrides)
    values = asdict(config) if isinstance(config, RunConfig) else dict(config or {})
    return config_from_dict(apply_overrides(values, overrides or []))


def train(config: RunConfig | dict | str | Path, overrides: list[str] | None = None, resume: bool = False,
          data: Any = None, callbacks: list | None = None) -> TrainResult:
    """Train the model of ``config`` on its data and keep the best and last checkpoints.

    Args:
        config: a :class:`RunConfig`, a nested dict, or a YAML path.
        overrides: ``["model.dim=128", "train.max_epochs=3"]``-style changes.
        resume: continue from ``RUN_DIR/checkpoints/last.ckpt`` of ``config.run_dir`` (same seed and
            data order, so the result equals an uninterrupted run's).
        data: a ``SpatioTemporalData`` (e.g. from ``stpatch.datasets.from_numpy``) to train on instead
            of the data set named in the config.
        callbacks: extra Lightning callbacks.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    config = resolve_config(config, overrides)
    run_dir = _run_dir(config)
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {last}; start the run without --resume")
    if not resume and last.is_file():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose another run_dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    config.run_dir = str(run_dir)
    save_config(config, run_dir / "config.yaml")

    pl.seed_everything(config.train.seed, workers=True, verbose=False)
    dm = make_data(config, data)
    dm.setup("fit")
    meta = data_meta(dm)
    module = ForecastModule(config.model, meta, asdict(config.train))
    module.extra_state = {
        "config": config.to_dict(),
        "data_meta": meta,
        "scaler": dm.scaler.state_dict(),
        "version": _version(),
    }
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val_loss", mode="min",
                                 save_last=True, enable_version_counter=False, save_on_train_epoch_end=False)
    trainer = _trainer(config, run_dir, [checkpoint, *(callbacks or [])], config.train.progress)
    if module.trainable:
        # Lightning's CSV logger starts metrics.csv afresh; keep the interrupted part and join them after
        earlier = _set_aside(run_dir / "metrics.csv") if resume else None
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None)
        # a budget (max_steps, max_time) can stop mid-epoch, after the last validation: keep those steps too
        trainer.save_checkpoint(last)
        if earlier is not None:
            _join_csv(earlier, run_dir / "metrics.csv")
    else:
        # nothing to learn (persistence, climatology): score validation and keep it as a checkpoint
        log.info("model %s has no parameters; skipping training", config.model["name"])
        trainer.validate(module, datamodule=dm, verbose=False)
        for name in ("best.ckpt", "last.ckpt"):
            trainer.save_checkpoint(run_dir / "checkpoints" / name)
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else run_dir / "checkpoints" / "best.ckpt"
    if not best.is_file():  # e.g. a time budget that ended before the first validation
        trainer.save_checkpoint(best)
    if not last.is_file():
        trainer.save_checkpoint(last)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    return TrainResult(run_dir, best, last, metrics)


def _set_aside(path: Path) -> Path | None:
    if not path.is_file():
        return None
    aside = path.with_name(f"{path.stem}.before-resume{path.suffix}")
    if aside.exists():  # an earlier resume was interrupted before joining: keep what it kept
        _join_csv(path, aside)
        path.unlink()
    else:
        os.replace(path, aside)
    return aside


def _join_csv(earlier: Path, current: Path) -> None:
    """``current`` becomes ``earlier`` followed by ``current`` (columns united); ``earlier`` is removed."""
    import pandas as pd

    frames = [pd.read_csv(p) for p in (earlier, current) if p.is_file()]
    _write_text(current, pd.concat(frames, ignore_index=True).to_csv(index=False))
    earlier.unlink()


def _version() -> str:
    from stpatch import __version__

    return __version__


# --------------------------------------------------------------------------- loading a trained run


@dataclass
class LoadedRun:
    """A trained forecaster with the config, data description and scaler it was trained with."""

    module: ForecastModule
    config: RunConfig
    meta: dict
    scaler: Any
    checkpoint: Path


def resolve_checkpoint(run_or_checkpoint: str | Path) -> Path:
    """A run directory means its best checkpoint; a file is used as given."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise FileNotFoundError(f"{path} holds no checkpoints/best.ckpt or last.ckpt; is it a run directory of `stpatch train`?")
    return path


def load_run(run_or_checkpoint: str | Path) -> LoadedRun:
    """Rebuild the trained forecaster of a run directory or checkpoint file, on the CPU, in eval mode."""
    from stpatch.data import scaler_from_state

    path = resolve_checkpoint(run_or_checkpoint)
    ckpt = read_checkpoint(path)
    extra = ckpt["stpatch"]
    hp = ckpt.get("hyper_parameters", {})
    module = ForecastModule(hp["model_options"], hp["data_meta"], hp["train_options"])
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit the model {hp['model_options']} ({err})") from err
    module.eval()
    module.extra_state = extra
    return LoadedRun(module, config_from_dict(extra["config"]), extra["data_meta"], scaler_from_state(extra["scaler"]), path)


def _check_data_matches(meta: dict, dm, checkpoint: Path) -> None:
    now = data_meta(dm)
    for key in ("kind", "in_channels", "num_nodes", "t_in", "t_out"):
        if meta.get(key) != now.get(key):
            raise ValueError(
                f"checkpoint {checkpoint} was trained on data with {key}={meta.get(key)}, "
                f"but the evaluation data has {key}={now.get(key)}; evaluate it on the data it was trained for"
            )


# --------------------------------------------------------------------------- evaluate


def evaluate(
    run_or_checkpoint: str | Path,
    split: str = "test",
    limit_batches: int | None = None,
    baselines: list[str] | None = None,
    write: bool = True,
    figures: bool = True,
    progress: bool = False,
    data: Any = None,
) -> dict:
    """Score a trained run on its test split beside the baselines, on exactly the same windows.

    Returns a dict with ``suite``, ``windows``, ``per_horizon[name][metric] -> list`` (one value per
    lead time, physical units) and ``mean[name][metric]`` for the model and each baseline.
    Writes ``eval.json`` and ``eval.md`` (and figures) into the run directory when ``write``.
    ``data`` is the user's ``SpatioTemporalData`` when the run was trained on one.
    """
    from stpatch.metrics import METRIC_SUITES, MetricAccumulator, summarize

    run = load_run(run_or_checkpoint)
    config = run.config
    baselines = list(config.eval.baselines if baselines is None else baselines)
    limit_batches = limit_batches if limit_batches is not None else config.eval.limit_batches
    dm = make_data(config, data)
    dm.setup("test")
    _check_data_matches(run.meta, dm, run.checkpoint)
    loader = {"test": dm.test_dataloader, "val": dm.val_dataloader}[split]()
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
        _write_json(run_dir / "eval.json", result)
        _write_text(run_dir / "eval.md", format_eval_table(result))
    if figures and sample is not None:
        paths = _sample_figures(run_dir / "figures", run.meta["kind"], *sample)
        if run.meta["kind"] == "grid":
            from stpatch.analysis.attention import attention_regions, save_attention_figure

            importance = attention_regions(run.module.model, sample_input)
            if importance is not None:
                paths.append(save_attention_figure(sample[0], importance[0], run_dir / "figures" / "attention.png"))
        result["figures"] = [str(p) for p in paths]
    return result


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
    from stpatch.analysis.figures import save_forecast_gif, save_forecast_strip, save_sensor_plot

    if kind == "sensor":
        return [save_sensor_plot(inputs, truth, forecast, folder / "forecast_sensors.png")]
    return [save_forecast_strip(inputs, truth, forecast, folder / "forecast_strip.png"),
            save_forecast_gif(truth, forecast, folder / "forecast.gif")]


def format_eval_table(result: dict) -> str:
    """Markdown: one row per forecaster, horizon-mean metrics, and the ratio to persistence."""
    means = result["mean"]
    names = list(means)
    metrics = list(means[names[0]])
    ref = means.get("persistence")
    lines = [f"Test metrics on {result['dataset']} ({result['windows']} windows, suite {result['suite']}); "
             "mean over lead times, physical units.", ""]
    header = "| model | " + " | ".join(metrics) + (" | " + metrics[0] + " / persistence |" if ref else " |")
    lines += [header, "|" + " --- |" * (len(metrics) + 1 + (1 if ref else 0))]
    for name in names:
        row = [f"{means[name][m]:.4g}" for m in metrics]
        if ref:
            denom = ref[metrics[0]]
            row.append(f"{means[name][metrics[0]] / denom:.3f}" if denom else "n/a")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    # the headline metric per lead time: errors usually grow with the horizon
    per = result["per_horizon"]
    leads = len(per[names[0]][metrics[0]])
    lines += ["", f"{metrics[0]} per lead time:", "",
              "| model | " + " | ".join(f"+{i + 1}" for i in range(leads)) + " |", "|" + " --- |" * (leads + 1)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{v:.4g}" for v in per[name][metrics[0]]) + " |")
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_json(path: Path, obj: Any) -> None:
    _write_text(path, json.dumps(obj, indent=2, default=float))


# --------------------------------------------------------------------------- predict


_GRID_LAYOUTS = {5: "BTCHW", 4: "TCHW", 3: "THW"}
_SENSOR_LAYOUTS = {4: "BTNC", 3: "TNC", 2: "TN"}


def _file_layout(path: str | Path, grid: bool) -> str | None:
    """The array layout of a ``.npy`` input, read by the checkpoint's kind (a 3-D array is THW or TNC)."""
    if Path(path).suffix.lower() != ".npy" or not Path(path).is_file():
        return None
    try:
        ndim = np.load(path, mmap_mode="r", allow_pickle=False).ndim
    except (ValueError, OSError, EOFError):
        return None  # read_array_file reports the corrupt file
    return (_GRID_LAYOUTS if grid else _SENSOR_LAYOUTS).get(ndim)


def predict(checkpoint: str | Path, data: Any, output: str | Path | None = None) -> np.ndarray:
    """Forecast the ``t_out`` steps after the last ``t_in`` steps of new data (no ground truth needed).

    Args:
        checkpoint: a run directory or ``.ckpt`` file.
        data: a file (``.npy``/``.npz``/NetCDF/CSV, read like the training data), a
            ``SpatioTemporalData``, or an array in the canonical layout: ``(T, C, H, W)`` /
            ``(B, T, C, H, W)`` for grids, ``(T, N, C)`` / ``(B, T, N, C)`` for sensors, in physical units.
        output: where to write the forecast, in the same family of format as the input file.

    Returns:
        the forecast in physical units, ``(B, T_out, C, H, W)`` or ``(B, T_out, N, C)`` (``B = 1``
        for a single series).
    """
    from stpatch.data import SpatioTemporalData, from_numpy, input_batch, read_array_file, write_forecast

    run = load_run(checkpoint)
    meta = run.meta
    grid = meta["kind"] == "grid"
    layout = "(B, T, C, H, W)" if grid else "(B, T, N, C)"
    source = read_array_file(data, layout=_file_layout(data, grid)) if isinstance(data, (str, Path)) else None
    if source is not None:
        data = source
    if not isinstance(data, SpatioTemporalData):
        array = np.asarray(data.detach().cpu() if isinstance(data, torch.Tensor) else data)
        if array.ndim not in ((4, 5) if grid else (3, 4)):
            raise ValueError(f"predict expects {layout} (or one series without B) for this checkpoint, got shape {array.shape}")
        batched = array.ndim == (5 if grid else 4)
        data = from_numpy(array, layout=("BTCHW" if batched else "TCHW") if grid else ("BTNC" if batched else "TNC"))
    if data.kind != meta["kind"]:
        raise ValueError(f"the checkpoint forecasts {meta['kind']} data {layout}, but the input is {data.kind} data")
    if data.num_channels != meta["in_channels"]:
        raise ValueError(f"the model was trained on {meta['in_channels']} channel(s); the input has {data.num_channels} "
                         f"(layout {layout})")
    if not grid and data.num_nodes != meta["num_nodes"]:
        raise ValueError(f"the model was trained on {meta['num_nodes']} sensors; the input has {data.num_nodes}")
    t_in = meta["t_in"]
    if min(data.lengths) < t_in:
        raise ValueError(f"the model needs the last {t_in} steps as input, the data holds {min(data.lengths)}")
    batch = input_batch(data, t_in, run.scaler)  # scaled, missing values masked and zeroed
    with torch.no_grad():
        forecast = run.scaler.inverse_transform(run.module(batch)).numpy()
    if output is not None:
        write_forecast(output, forecast[0] if forecast.shape[0] == 1 else forecast, like=source)
    return forecast
