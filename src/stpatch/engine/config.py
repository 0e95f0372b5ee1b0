"""Run configuration: YAML files and ``--set a.b=value`` overrides, validated with clear errors.

A config has four sections::

    data:  {name, data_dir, t_in, t_out, batch_size, split, stride, scaler, num_workers, options}
    model: {name, ...any keyword the model's constructor takes}
    train: {max_epochs, max_steps, max_time, lr, loss, seed, accelerator, devices, strategy, precision, ...}
    eval:  {suite, baselines, limit_batches, figures}

plus ``run_dir``. Unknown keys and wrong types are errors that name the key, what was expected
and what came.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml


class ConfigError(ValueError):
    """A config key is unknown or holds a value of the wrong type."""


@dataclass
class DataConfig:
    name: str = "digits"
    data_dir: Union[str, None] = None
    t_in: int = 10
    t_out: int = 10
    batch_size: int = 16
    split: Union[list, str, dict, None] = None
    stride: int = 1
    scaler: Union[str, None] = None
    num_workers: int = 0
    options: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    max_epochs: int = 10
    max_steps: int = -1
    max_time: Union[str, None] = None
    lr: float = 1e-3
    weight_decay: float = 0.01
    loss: str = "mse"
    seed: int = 0
    accelerator: str = "cpu"
    devices: Union[int, str] = 1
    strategy: str = "auto"
    precision: str = "32-true"
    gradient_clip_val: float = 1.0
    limit_train_batches: Union[int, float] = 1.0
    limit_val_batches: Union[int, float] = 1.0
    scheduler: str = "cosine"
    progress: bool = True
    deterministic: bool = True


@dataclass
class EvalConfig:
    suite: Union[str, list, None] = None
    baselines: list = field(default_factory=lambda: ["persistence"])
    limit_batches: Union[int, None] = None
    figures: bool = True


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: dict = field(default_factory=lambda: {"name": "stpnet"})
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run_dir: Union[str, None] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


LOSSES = ("mse", "mae", "huber")
SCHEDULERS = ("cosine", "none")


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _build(cls: type, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {type(values).__name__}: {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(where + '.' + k for k in unknown)}; valid keys: {', '.join(sorted(known))}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{where}.{key}")
            continue
        if not _type_ok(value, hint):
            raise ConfigError(f"{where}.{key} must be {_type_name(hint)}, got {type(value).__name__} {value!r}")
        kwargs[key] = float(value) if hint is float else value
    return cls(**kwargs)


def config_from_dict(values: dict) -> RunConfig:
    """Validate a nested dict into a :class:`RunConfig` (unknown keys and wrong types raise)."""
    values = dict(values or {})
    model = values.get("model", {"name": "stpnet"})
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise ConfigError(f"model must be a mapping with a 'name' (see `stpatch models`), got {model!r}")
    config = _build(RunConfig, {k: v for k, v in values.items() if k != "model"}, "config")
    config.model = dict(model)
    if config.train.loss not in LOSSES:
        raise ConfigError(f"train.loss must be one of {LOSSES}, got {config.train.loss!r}")
    if config.train.scheduler not in SCHEDULERS:
        raise ConfigError(f"train.scheduler must be one of {SCHEDULERS}, got {config.train.scheduler!r}")
    for key in ("t_in", "t_out", "batch_size", "stride"):
        if getattr(config.data, key) <= 0:
            raise ConfigError(f"data.{key} must be positive, got {getattr(config.data, key)}")
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.dim=128"`` -> ``(["model", "dim"], 128)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"an override looks like section.key=value (e.g. model.dim=128), got {text!r}")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ConfigError(f"empty key in override {text!r}")
    return path, yaml.safe_load(raw) if raw.strip() else None


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` overrides to a nested dict (returns a new dict)."""
    out = yaml.safe_load(yaml.safe_dump(values or {}))  # deep copy of plain data
    for text in overrides or []:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set {text!r}: {part} is not a section")
        node[path[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or start from the defaults), apply overrides, validate."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            shipped = Path(__file__).resolve().parents[1] / "configs" / path.name
            if shipped.exists():
                path = shipped
            else:
                raise FileNotFoundError(f"config file {path} not found; see the shipped ones with `stpatch configs`")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from err
    return config_from_dict(apply_overrides(values, overrides or []))


def save_config(config: RunConfig, path: Path) -> None:
    """Write the resolved config as YAML, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    tmp.replace(path)


def parse_max_time(text: str | None) -> str | None:
    """Accept HH:MM:SS, DD:HH:MM:SS or seconds; Lightning wants DD:HH:MM:SS."""
    if text is None:
        return None
    text = str(text).strip()
    if re.fullmatch(r"\d+", text):
        days, rest = divmod(int(text), 86400)
        hours, rest = divmod(rest, 3600)
        return f"{days:02d}:{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    parts = text.split(":")
    if len(parts) == 3:
        parts = ["00", *parts]
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"max_time must look like HH:MM:SS or DD:HH:MM:SS, got {text!r}")
    return ":".join(p.zfill(2) for p in parts)
