"""Wiring shared by every engine job: a config from its many forms, its data module, the data's description.

Every job module (training, runs, evaluation, prediction) imports this one, so the warning filters
below apply whichever job a user starts from.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stpatch.engine.config import RunConfig, apply_overrides, config_from_dict, load_config

# Lightning chatters about things that are expected on a CPU laptop; keep the console readable.
for pattern in (".*does not have many workers.*", ".*GPU available but not used.*", ".*LeafSpec.*",
                ".*number of training batches.*", ".*`isinstance.*treespec.*", ".*Experiment logs directory.*"):
    warnings.filterwarnings("ignore", message=pattern)

# the YAML configs shipped inside the package (``stpatch train --config NAME`` finds them here)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def shipped_configs() -> list[Path]:
    """The YAML configs shipped with the package, sorted by name."""
    return sorted(CONFIG_DIR.glob("*.yaml"))


def resolve_config(config: RunConfig | dict | str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """A validated :class:`RunConfig` from a config object, nested dict or YAML path, plus overrides."""
    if isinstance(config, (str, Path)):
        return load_config(config, overrides)
    values = asdict(config) if isinstance(config, RunConfig) else dict(config or {})
    return config_from_dict(apply_overrides(values, overrides or []))


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
    options = dict(d.options)
    if data is not None:
        # the given data replaces the named data set, so the options that said how to read that set
        # (crop, max_frames, test_events ...) no longer apply; batching options (augment ...) still do
        from stpatch.data.module import STDataModule

        accepted = inspect.signature(STDataModule.__init__).parameters
        options = {k: v for k, v in options.items() if k in accepted}
    return make_datamodule(d.name if data is None else data, **kwargs, **options)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def data_meta(dm) -> dict:
    """What a checkpoint must know of its data: layout, sizes, graph, latitudes, metric suite.

    ``suite`` is the data's own (``attrs["suite"]``, e.g. ``"radar"`` from ``from_radar``) or its field;
    a config's ``eval.suite`` wins over it at evaluation.

    ``spatial_shape`` is ``[H, W]`` for grids and ``[N]`` for sensors; ``adjacency`` is ``(N, N)``.
    """
    info = getattr(dm, "info", None)
    # the data may name its metric suite (from_radar and the radar sets: "radar"); else the field's
    suite = (getattr(getattr(dm, "data", None), "attrs", None) or {}).get("suite")
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
        "suite": suite or (getattr(info, "field", None) if info is not None else None),
        "dataset": getattr(info, "name", None) if info is not None else None,
    }
