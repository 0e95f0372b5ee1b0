"""The search space of ``stpatch tune``: which config keys vary, and over which values.

A space maps config keys, dotted as in ``--set``, to a list of choices or to a numeric range::

    model.patch: [[2, 4, 4], [2, 8, 8], [5, 8, 8]]      # choices: any YAML values
    model.dims: [[16, 32], [32, 64]]
    model.attn_depth: [1, 2, 4]
    train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}    # a float range, log-uniform
    model.heads: {low: 1, high: 4}                       # ints at both ends: an int range

Keys are checked against the config's sections (``data.*``, ``train.*``) and the options the model
takes (``model.*``); keys that the tuner sets itself or that change what the validation loss
measures (the data set, ``t_in``/``t_out``, the split, the loss, budgets) are refused.

The config's own value of every key is part of its space (a choice is added, a range widened), so
that the first trial, the config unchanged, is a point of the space.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stpatch.engine.config import (
    ConfigError,
    DataConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
)

__all__ = ["Param", "SearchSpace", "TuneSpaceError", "default_space", "load_space", "model_options"]

# keys `stpatch tune` sets for every trial, or that would change what the validation loss measures
RESERVED = {
    "data.name", "data.data_dir", "data.t_in", "data.t_out", "data.split", "data.scaler",
    "train.max_epochs", "train.max_steps", "train.max_time", "train.limit_train_batches",
    "train.limit_val_batches", "train.loss", "train.progress", "train.seed", "train.accelerator",
    "train.devices", "train.num_nodes", "train.strategy", "model.name",
}


class TuneSpaceError(ConfigError):
    """A search space names an unknown key, a reserved one, or a value the config or model refuses."""


@dataclass(frozen=True)
class Param:
    """One searched key: ``choices`` (categorical) or ``low``/``high`` (a range; ``log`` for log-uniform)."""

    key: str
    choices: tuple = ()
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def is_int(self) -> bool:
        return self.is_range and isinstance(self.low, int) and isinstance(self.high, int)

    def encoded(self) -> list:
        """The choices as Optuna stores them: lists and mappings as JSON text, scalars as they are."""
        return [encode(c) for c in self.choices]

    def to_yaml(self) -> Any:
        if self.is_range:
            return {"low": self.low, "high": self.high, "log": self.log}
        return list(self.choices)


def encode(value: Any) -> Any:
    """A value Optuna can store as a categorical choice (``[2, 4, 4]`` -> ``"[2, 4, 4]"``)."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` for the values it encodes."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def plain(value: Any) -> Any:
    """Tuples to lists, recursively, so that ``(2, 4, 4)`` and ``[2, 4, 4]`` compare equal."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class SearchSpace:
    """The searched keys, in order. ``params`` holds one :class:`Param` per key."""

    params: tuple[Param, ...]

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def __getitem__(self, key: str) -> Param:
        for p in self.params:
            if p.key == key:
                return p
        raise KeyError(key)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask an Optuna trial for one point: ``{key: value}`` with values as the config takes them."""
        point = {}
        for p in self.params:
            if p.is_int:
                point[p.key] = trial.suggest_int(p.key, p.low, p.high, log=p.log)
            elif p.is_range:
                point[p.key] = trial.suggest_float(p.key, float(p.low), float(p.high), log=p.log)
            else:
                point[p.key] = decode(trial.suggest_categorical(p.key, p.encoded()))
        return point

    def to_yaml(self) -> str:
        return yaml.safe_dump({p.key: p.to_yaml() for p in self.params}, sort_keys=False)


def overrides(point: dict[str, Any]) -> list[str]:
    """``{"model.patch": [2, 8, 8]}`` -> ``["model.patch=[2, 8, 8]"]`` (``--set`` style, values as YAML)."""
    return [f"{key}={json.dumps(value)}" for key, value in point.items()]


def model_options(name: str) -> dict[str, Any] | None:
    """The options the registered model ``name`` takes, with their signature defaults (no default:
    ``inspect.Parameter.empty``); None when it takes any (``**kwargs``)."""
    import stpatch.models  # noqa: F401  (registers every model)
    from stpatch.models import registry

    params = inspect.signature(registry.get_model_entry(name).factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    named = {p.name: p.default for p in params
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return {**{k: None for k in registry.BASE_ARGS}, **named}


def _check_key(key: str, config: RunConfig) -> None:
    parts = key.split(".")
    sections = {"data": DataConfig, "train": TrainConfig}
    if len(parts) != 2 or parts[0] not in (*sections, "model"):
        raise TuneSpaceError(f"search space key {key!r}: expected section.key with section data, model or train "
                             f"(e.g. model.patch, train.lr), got {key!r}")
    if key in RESERVED:
        raise TuneSpaceError(f"search space key {key!r} is set by `stpatch tune` itself or changes what the "
                             f"validation loss measures; remove it from the space (reserved: {', '.join(sorted(RESERVED))})")
    section, name = parts
    if section in sections:
        known = [f.name for f in dataclasses.fields(sections[section])]
        if name not in known:
            raise TuneSpaceError(f"search space key {key!r} is not a config key; valid {section} keys: {', '.join(known)}")
        return
    options = model_options(config.model["name"])
    if options is not None and name not in options:
        raise TuneSpaceError(f"search space key {key!r}: model {config.model['name']!r} takes no option {name!r}; "
                             f"its options: {', '.join(sorted(k for k in options if k not in ('in_channels', 't_in', 't_out')))}")


def _param(key: str, spec: Any) -> Param:
    if isinstance(spec, list):
        if not spec:
            raise TuneSpaceError(f"search space key {key!r}: expected a non-empty list of choices, got []")
        unique = []
        for value in spec:
            if plain(value) not in unique:
                unique.append(plain(value))
        return Param(key, choices=tuple(unique))
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"low", "high", "log"})
        low, high = spec.get("low"), spec.get("high")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
        if unknown or not numbers or not low < high:
            raise TuneSpaceError(f"search space key {key!r}: expected a range {{low: L, high: H, log: true|false}} "
                                 f"with numbers L < H, got {spec!r}")
        if spec.get("log", False) and low <= 0:
            raise TuneSpaceError(f"search space key {key!r}: a log range needs low > 0, got low={low}")
        return Param(key, low=low, high=high, log=bool(spec.get("log", False)))
    raise TuneSpaceError(f"search space key {key!r}: expected a list of choices or a range {{low, high, log}}, "
                         f"got {type(spec).__name__} {spec!r}")


def space_from_dict(values: dict, config: RunConfig) -> SearchSpace:
    """Validate a ``{key: choices | range}`` mapping against ``config`` (every choice must make a valid config)."""
    if not isinstance(values, dict) or not values:
        raise TuneSpaceError(f"a search space is a non-empty mapping of config keys to choices or ranges "
                             f"(e.g. train.lr: {{low: 1.0e-4, high: 1.0e-2, log: true}}), got {values!r}")
    base = config.to_dict()
    params = []
    for key, spec in values.items():
        _check_key(str(key), config)
        param = _param(str(key), spec)
        for value in param.choices or (param.low, param.high):
            try:
                config_from_dict(apply_overrides(base, overrides({key: value})))
            except ConfigError as err:
                raise TuneSpaceError(f"search space key {key!r}: the value {value!r} makes an invalid config: {err}") from None
        params.append(param)
    return SearchSpace(tuple(params))


def load_space(path: str | Path, config: RunConfig) -> SearchSpace:
    """Read a space from a YAML file (see the module docstring) and validate it against ``config``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--space {path}: no such file; it holds a YAML mapping such as "
                                f"'train.lr: {{low: 1.0e-4, high: 1.0e-2, log: true}}'")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise TuneSpaceError(f"--space {path} is not valid YAML: {err}") from None
    return space_from_dict(values, config)


def time_patches(t_in: int) -> list[int]:
    """Time patch sizes worth trying: the divisors of ``t_in`` up to half of it.

    >>> time_patches(10), time_patches(12)
    ([1, 2, 5], [1, 2, 3, 4, 6])
    """
    return [p for p in range(1, max(t_in // 2, 1) + 1) if t_in % p == 0]


def space_patches(height: int, width: int, tokens: tuple[int, int] = (4, 16)) -> list[int]:
    """Square spatial patch sizes (powers of two) that leave ``tokens`` patches along the longer side
    (sizes that do not divide the grid are padded by the model).

    >>> space_patches(64, 64), space_patches(33, 49), space_patches(128, 128)
    ([4, 8, 16], [4, 8, 16], [8, 16, 32])
    """
    side = max(height, width)
    sizes = [2 ** k for k in range(1, 10) if tokens[0] <= math.ceil(side / 2 ** k) <= tokens[1]]
    return sizes or [max(1, side // tokens[0])]


def default_space(config: RunConfig, t_in: int, grid: tuple[int, int]) -> SearchSpace:
    """Patch size, width, depth and learning rate, for a grid model that takes ``patch``.

    Patch: every time size of :func:`time_patches` with every square spatial size of
    :func:`space_patches` (only the spatial sizes for a model whose patch is one int); widths ``[16, 32]``, ``[32, 64]``, ``[64, 128]``; ``attn_depth`` 1, 2, 4;
    ``conv_depths`` 1, 2; ``lr`` log-uniform in [1e-4, 1e-2]. Options the model does not take are left out.
    """
    name = config.model["name"]
    options = model_options(name)
    if options is not None and "patch" not in options:
        raise TuneSpaceError(f"stpatch tune searches patch sizes by default, but model {name!r} takes no `patch` "
                             f"option (it takes: {', '.join(sorted(options))}); tune a patch model (stpnet, stpconv, "
                             f"stpformer, ...) or give --space with the keys to search (e.g. train.lr)")
    # a model whose patch is one spatial size (convlstm's space-to-depth) gets sizes, not tubelets
    current = config.model.get("patch", (options or {}).get("patch"))
    spatial_only = isinstance(current, int) and not isinstance(current, bool)
    values: dict[str, Any] = {
        "model.patch": (space_patches(*grid) if spatial_only
                        else [[pt, ps, ps] for pt in time_patches(t_in) for ps in space_patches(*grid)]),
        "model.dims": [[16, 32], [32, 64], [64, 128]],
        "model.attn_depth": [1, 2, 4],
        "model.conv_depths": [1, 2],
    }
    values = {k: v for k, v in values.items() if options is None or k.split(".")[1] in options}
    values["train.lr"] = {"low": 1e-4, "high": 1e-2, "log": True}
    return space_from_dict(values, config)


def with_default(space: SearchSpace, default: dict[str, Any]) -> tuple[SearchSpace, list[str]]:
    """``space`` with each key's default value added (a choice) or inside it (a range widened);
    returns the space and one note per change."""
    params, notes = [], []
    for p in space.params:
        value = plain(default[p.key])
        if p.is_range and not p.low <= value <= p.high:
            low, high = min(p.low, value), max(p.high, value)
            notes.append(f"{p.key}: range widened to [{low}, {high}] to hold the config's value {value}")
            p = dataclasses.replace(p, low=low, high=high)
        elif not p.is_range and value not in p.choices:
            notes.append(f"{p.key}: the config's value {value!r} added to the choices")
            p = dataclasses.replace(p, choices=(value, *p.choices))
        params.append(p)
    return SearchSpace(tuple(params)), notes
