"""Training a run: the Lightning trainer, the run directory, resuming, and joining the metrics log.

A run directory holds everything a run made::

    RUN_DIR/config.yaml              the resolved config
    RUN_DIR/profile.json             the training split's data profile (also in the checkpoints; see
                                     stpatch.data.profile), which the data guard judges new input by
    RUN_DIR/checkpoints/best.ckpt    lowest validation loss (atomically written)
    RUN_DIR/checkpoints/last.ckpt    the latest state, for --resume (with train.ema_decay, both hold the
                                     average of the weights, and the raw ones beside it; stpatch.engine.ema)
    RUN_DIR/val_gain.json            with model.val_gain: the per-lead correction gains fitted on
                                     validation (stpatch.engine.val_gain), also in best.ckpt
    RUN_DIR/metrics.csv              per-step / per-epoch losses (Lightning CSV logger)
    RUN_DIR/tensorboard/             the same for TensorBoard
    RUN_DIR/eval.json, eval.md       test metrics of the model beside the baselines (see evaluation)
    RUN_DIR/figures/                 forecast strip (PNG) and animation (GIF)

A distributed run (``train.num_nodes``, ``devices``, ``strategy``; see :mod:`stpatch.engine.distributed`)
trains in every process; only global rank 0 writes the run directory.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from stpatch.atomic import remove_stale_temporaries, write_json, write_text
from stpatch.data.guard import profile_training
from stpatch.engine.checkpoint import AtomicCheckpointIO
from stpatch.engine.config import RunConfig, parse_max_time, save_config
from stpatch.engine.distributed import (
    agree,
    inherited_run_dir,
    is_main_process,
    job_id,
    launched_distributed,
    shared_run_dir,
)
from stpatch.engine.ema import WeightEMA
from stpatch.engine.module import ForecastModule
from stpatch.engine.val_gain import fit_val_gain, uses_val_gain
from stpatch.engine.wiring import data_meta, make_data, resolve_config

log = logging.getLogger("stpatch")

__all__ = ["TrainResult", "is_main_process", "train"]


@dataclass
class TrainResult:
    """What :func:`train` made: the run directory, its checkpoints and the final losses."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    metrics: dict = field(default_factory=dict)


def _run_dir(config: RunConfig) -> Path:
    if config.run_dir:
        return Path(config.run_dir)
    inherited = inherited_run_dir()
    if inherited is not None:
        return inherited
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if launched_distributed(config.train.num_nodes):
        # processes on other machines start at other times: a time stamp would give each its own folder
        job = job_id()
        if job is None:
            raise ValueError(f"a run on {config.train.num_nodes} machines (or a launcher's WORLD_SIZE > 1) needs "
                             "run_dir (--run-dir) set to the same folder on every machine, ideally on a shared "
                             "file system; under SLURM or torchrun --rdzv-id the job id names it when unset")
        stamp = f"job{job}"
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
        num_nodes=t.num_nodes,
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
    config.run_dir = str(run_dir)
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val_loss", mode="min",
                                 save_last=True, enable_version_counter=False, save_on_train_epoch_end=False)
    # the trainer comes first: its global rank says who writes the run directory. Rank 0 alone does
    # (Lightning's checkpoints and logs are rank 0's too); the other processes train and write nothing
    extra = list(callbacks or [])
    if config.train.ema_decay > 0:  # validation and checkpoints see the average of the weights
        extra.append(WeightEMA(config.train.ema_decay))
    trainer = _trainer(config, run_dir, [checkpoint, *extra], config.train.progress)
    writer = trainer.is_global_zero
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:  # a run killed mid-write left half-written temporaries beside its intact files
            for stale in remove_stale_temporaries(run_dir):
                log.info("removed %s, left by an interrupted write", stale)
        save_config(config, run_dir / "config.yaml")

    pl.seed_everything(config.train.seed, workers=True, verbose=False)
    dm = make_data(config, data)
    dm.setup("fit")
    meta = data_meta(dm)
    # the guard refuses Inf and impossible values in the training split; the profile judges later input
    profile = profile_training(dm)
    if writer:
        write_json(run_dir / "profile.json", profile)
    module = ForecastModule(config.model, meta, asdict(config.train))
    module.set_loss_scales(dm.scaler)  # train.csi_thresholds and train.ssim_range, in the scaler's units
    module.extra_state = {
        "config": config.to_dict(),
        "data_meta": meta,
        "scaler": dm.scaler.state_dict(),
        "profile": profile,
        "version": _version(),
    }
    if module.trainable:
        # Lightning's CSV logger starts metrics.csv afresh; keep the interrupted part and join them after
        earlier = _set_aside(run_dir / "metrics.csv") if resume and writer else None
        with shared_run_dir(run_dir):
            trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None)
        # a budget (max_steps, max_time) can stop mid-epoch, after the last validation: keep those steps too
        # (saving is collective: every rank calls it, rank 0 writes)
        trainer.save_checkpoint(last)
        if earlier is not None:
            _join_csv(earlier, run_dir / "metrics.csv")
    else:
        # nothing to learn (persistence, climatology): score validation and keep it as a checkpoint
        log.info("model %s has no parameters; skipping training", config.model["name"])
        with shared_run_dir(run_dir):
            trainer.validate(module, datamodule=dm, verbose=False)
        for name in ("best.ckpt", "last.ckpt"):
            trainer.save_checkpoint(run_dir / "checkpoints" / name)
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else run_dir / "checkpoints" / "best.ckpt"
    # rank 0's disk decides for every rank, since saving is collective
    if not agree(trainer, best.is_file()):  # e.g. a time budget that ended before the first validation
        trainer.save_checkpoint(best)
    if not agree(trainer, last.is_file()):
        trainer.save_checkpoint(last)
    if module.trainable and uses_val_gain(module):  # model.val_gain: per-lead gains on the best checkpoint
        if writer:
            fit_val_gain(module, dm, best, run_dir)
        agree(trainer, True)  # the other ranks wait for rank 0's checkpoint
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    return TrainResult(run_dir, best, last, metrics)


def _set_aside(path: Path) -> Path | None:
    if not path.is_file():
        return None
    aside = path.with_name(f"{path.stem}.before-resume{path.suffix}")
    if aside.exists():
        # an earlier resume was interrupted before joining: ``aside`` holds the oldest rows, ``path`` the
        # rows of the interrupted resume; keep both, oldest first
        _join_csv(aside, path)
    os.replace(path, aside)
    return aside


def _join_csv(earlier: Path, current: Path) -> None:
    """``current`` becomes ``earlier`` followed by ``current`` (columns united); ``earlier`` is removed."""
    import pandas as pd

    # a run killed before its logger wrote a row leaves an empty file: nothing to keep from it
    frames = [pd.read_csv(p) for p in (earlier, current) if p.is_file() and p.stat().st_size > 0]
    if frames:
        write_text(current, pd.concat(frames, ignore_index=True).to_csv(index=False))
    earlier.unlink()


def _version() -> str:
    from stpatch import __version__

    return __version__
