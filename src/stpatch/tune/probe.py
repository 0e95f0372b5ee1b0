"""Probing the model on the data's shapes before any training: does a point of the space build and run,
and what values does the unchanged config give the searched keys.

A probe builds the model from the config with a point applied and runs one forward pass on zeros of
the data's shape, ``(1, T_in, C, H, W)`` for grids and ``(1, T_in, N, C)`` for sensors, so that a
patch the model cannot take on this grid fails here, in a second, not minutes into a trial.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from stpatch.engine.config import RunConfig, apply_overrides, config_from_dict
from stpatch.tune.space import SearchSpace, TuneSpaceError, model_options, overrides, plain

__all__ = ["check_point", "default_point", "point_config"]


def point_config(config: RunConfig, point: dict[str, Any]) -> RunConfig:
    """``config`` with the values of ``point`` (``{"model.patch": [2, 8, 8], ...}``) applied and validated."""
    return config_from_dict(apply_overrides(config.to_dict(), overrides(point)))


def _zeros(meta: dict) -> dict[str, torch.Tensor]:
    c, t = meta["in_channels"], meta["t_in"]
    shape = (1, t, meta["num_nodes"], c) if meta["kind"] == "sensor" else (1, t, c, *meta["spatial_shape"])
    return {"x": torch.zeros(shape), "tod": torch.zeros(1, t), "dow": torch.zeros(1, t, dtype=torch.long)}


def _build(config: RunConfig, meta: dict) -> torch.nn.Module:
    from stpatch.engine.module import build_model

    return build_model(config.model, meta)


def check_point(config: RunConfig, point: dict[str, Any], meta: dict) -> str | None:
    """None when the model of ``config`` with ``point`` builds and maps a zero input of the data's shape
    to ``(1, T_out, ...)``; else the reason it does not, as a message."""
    try:
        model = _build(point_config(config, point), meta).eval()
        batch = _zeros(meta)
        takes = inspect.signature(model.forward).parameters
        with torch.no_grad():
            out = model(batch["x"], **{k: batch[k] for k in ("tod", "dow") if k in takes})
    except Exception as err:  # a model refuses options in its own words: TypeError, ValueError, RuntimeError
        return f"{type(err).__name__}: {err}"
    if out.shape[1] != meta["t_out"]:
        return f"the forecast has {out.shape[1]} steps, expected t_out={meta['t_out']}"
    return None


def _structure(model: torch.nn.Module) -> tuple:
    return repr(model), tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def default_point(space: SearchSpace, config: RunConfig, meta: dict) -> dict[str, Any]:
    """The value the unchanged ``config`` gives each searched key: its own, or the model's signature default.

    A preset (e.g. ``stpformer``) may set a default of its own that its signature does not show; the
    model built with the signature default is then compared with the one built from the config, and a
    difference is an error asking to set the key in the config.
    """
    values = config.to_dict()
    point, from_signature = {}, []
    for key in space.keys:
        section, name = key.split(".")
        if section == "model" and name not in config.model:
            options = model_options(config.model["name"]) or {}
            default = options.get(name, inspect.Parameter.empty)
            if default is inspect.Parameter.empty or default is None:
                raise TuneSpaceError(f"search space key {key!r}: the config does not set it and model "
                                     f"{config.model['name']!r} has no default for it; set {key} in the config")
            point[key] = plain(default)
            from_signature.append(key)
        else:
            point[key] = plain(values[section][name])
    if from_signature:
        as_is, explicit = _build(config, meta), _build(point_config(config, point), meta)
        if _structure(as_is) != _structure(explicit):
            raise TuneSpaceError(f"model {config.model['name']!r} sets its own defaults for "
                                 f"{', '.join(from_signature)} (its signature says {[point[k] for k in from_signature]}); "
                                 f"set {', '.join(from_signature)} in the config so that the first trial runs the config as it is")
    return point

