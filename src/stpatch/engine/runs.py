"""Loading a trained run back: its checkpoint, forecaster, config, data description and scaler."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stpatch.engine.checkpoint import read_checkpoint
from stpatch.engine.config import RunConfig, config_from_dict
from stpatch.engine.module import ForecastModule
from stpatch.engine.wiring import data_meta


@dataclass
class LoadedRun:
    """A trained forecaster with the config, data description and scaler it was trained with."""

    module: ForecastModule
    config: RunConfig
    meta: dict
    scaler: Any
    checkpoint: Path
    profile: dict | None = None  # the training split's data profile (None for runs older than profiles)


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
    return LoadedRun(module, config_from_dict(extra["config"]), extra["data_meta"], scaler_from_state(extra["scaler"]), path,
                     extra.get("profile"))


def run_info(run_or_checkpoint: str | Path) -> dict:
    """What a run is: its checkpoint, model, data (kind, sizes, data set) and the data profile of its
    training split (``stpatch info RUN``)."""
    run = load_run(run_or_checkpoint)
    keep = ("kind", "dataset", "suite", "in_channels", "t_in", "t_out", "spatial_shape", "num_nodes")
    return {
        "checkpoint": str(run.checkpoint),
        "model": dict(run.config.model),
        "data": {"name": run.config.data.name, **{k: run.meta.get(k) for k in keep}},
        "scaler": repr(run.scaler),
        "version": run.module.extra_state.get("version"),
        "profile": run.profile,
    }


def check_data_matches(meta: dict, dm, checkpoint: Path) -> None:
    """Raise ``ValueError`` when ``dm`` is not the kind of data the checkpoint (``meta``) was trained on."""
    now = data_meta(dm)
    for key in ("kind", "in_channels", "num_nodes", "t_in", "t_out"):
        if meta.get(key) != now.get(key):
            raise ValueError(
                f"checkpoint {checkpoint} was trained on data with {key}={meta.get(key)}, "
                f"but the evaluation data has {key}={now.get(key)}; evaluate it on the data it was trained for"
            )
