"""Run configuration: YAML files and ``--set a.b=value`` overrides, validated with clear errors.

A config has four sections::

    data:  {name, data_dir, t_in, t_out, batch_size, split, stride, scaler, num_workers, options}
    model: {name, ...any keyword the model's constructor takes}
    train: {max_epochs, max_steps, max_time, lr, loss, seed, accelerator, devices, num_nodes, strategy, precision, ...}
    eval:  {suite, baselines, limit_batches, figures}

plus ``run_dir``. Unknown keys and wrong types are errors that name the key, what was expected
and what came. Names are checked against the tables they select from, when the config is read:
``model.name`` and ``eval.baselines`` against the model registry, the model's options against
its constructor's signature (a constructor with ``**kwargs`` takes any), ``train.loss`` and
``train.scheduler`` against :data:`~stpatch.engine.losses.LOSSES` and
:data:`~stpatch.engine.losses.SCHEDULERS` (the tables the trainer builds from), and
``eval.suite`` against :data:`stpatch.metrics.METRIC_SUITES` (or, for a list, the metric names).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from stpatch.atomic import write_text
from stpatch.engine.losses import LOSSES, SCHEDULERS


class ConfigError(ValueError):
    """A config key is unknown or holds a value of the wrong type."""


#: the model of a config without ``model.name`` and of ``stpatch demo``: the conv-only spacetime patch
#: network, which beat stpnet (conv + attention) at equal wall time on Moving MNIST at 3 and 20 minutes
#: (test and validation) and a variant with LayerScale attention on its conv stack (BENCHMARKS.md)
DEFAULT_MODEL = "stpconv"


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
    #: thresholds in the data's physical units (e.g. ``[1.0, 5.0]`` mm/h) at which a soft critical
    #: success index is added to the loss (``1 - soft CSI`` per threshold, times ``csi_weight``); empty: off
    csi_thresholds: list = field(default_factory=list)
    csi_weight: float = 1.0
    #: weight of a structure term ``1 - SSIM`` added to the loss (grids only; 0: off), against the blur a
    #: squared error favours; ``ssim_range`` is the data's value range in physical units (1.0 for pixels in [0, 1])
    ssim_weight: float = 0.0
    ssim_range: float = 1.0
    #: side of the random square the SSIM term is computed on in each training step (0: whole frames): on a
    #: CPU the term over whole frames costs about a model step, a 64-pixel square ~1/15 of that on 144x176
    #: (benchmarks/bench_ssim_loss.py)
    ssim_crop: int = 64
    #: exponential moving average of the weights (decay per optimiser step, e.g. 0.99: the average spans about
    #: the last 100 steps; 0: off). Validation scores the average and the checkpoints hold it (stpatch.engine.ema)
    ema_decay: float = 0.0
    seed: int = 0
    accelerator: str = "cpu"
    devices: Union[int, str] = 1
    #: machines of a distributed run (each with ``devices`` processes); more than one needs a launcher
    #: that starts the same command on every machine (torchrun, SLURM; see the README)
    num_nodes: int = 1
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
    # the default grid model is the design that won on Moving MNIST at equal budget (BENCHMARKS.md, ablation)
    model: dict = field(default_factory=lambda: {"name": DEFAULT_MODEL})
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run_dir: Union[str, None] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
    model = values.get("model", {"name": DEFAULT_MODEL})
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise ConfigError(f"model must be a mapping with a 'name' (see `stpatch models`), got {model!r}")
    config = _build(RunConfig, {k: v for k, v in values.items() if k != "model"}, "config")
    config.model = dict(model)
    _check_name("train.loss", config.train.loss, LOSSES)
    _check_name("train.scheduler", config.train.scheduler, SCHEDULERS)
    for key in ("t_in", "t_out", "batch_size", "stride"):
        if getattr(config.data, key) <= 0:
            raise ConfigError(f"data.{key} must be positive, got {getattr(config.data, key)}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in config.train.csi_thresholds):
        raise ConfigError(f"train.csi_thresholds must be a list of numbers (thresholds in the data's units, e.g. "
                          f"[1.0, 5.0] mm/h), got {config.train.csi_thresholds!r}")
    if not 0.0 <= config.train.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1) (0: off; 0.99 averages about the last 100 steps), "
                          f"got {config.train.ema_decay}")
    if config.train.csi_weight < 0:
        raise ConfigError(f"train.csi_weight must be 0 or more, got {config.train.csi_weight}")
    if config.train.ssim_crop < 0 or 0 < config.train.ssim_crop < 11:
        raise ConfigError(f"train.ssim_crop must be 0 (whole frames) or at least 11 (SSIM's window), "
                          f"got {config.train.ssim_crop}")
    if config.train.ssim_weight < 0 or config.train.ssim_range <= 0:
        raise ConfigError(f"train.ssim_weight must be 0 or more and train.ssim_range positive (the data's value range, "
                          f"1.0 for pixels in [0, 1]), got {config.train.ssim_weight} and {config.train.ssim_range}")
    if config.train.num_nodes < 1:
        raise ConfigError(f"train.num_nodes must be 1 or more (the machines of the run), got {config.train.num_nodes}")
    _check_model(config.model)
    _check_eval(config.eval)
    return config


def _check_name(key: str, value: Any, table: Any) -> None:
    if value not in table:
        raise ConfigError(f"{key} must be one of {', '.join(table)}, got {value!r}")


def _model_options(name: str) -> list[str] | None:
    """The options the registered model ``name`` takes, or None when it takes any (``**kwargs``)."""
    import stpatch.models  # noqa: F401  (registers every model)
    from stpatch.models import registry

    try:
        factory = registry.get_model_entry(name).factory
    except ValueError:
        raise ConfigError(f"model.name {name!r} is not a registered model; "
                          f"available models: {', '.join(registry.list_models())}") from None
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    named = [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    # a model that does not name the base-forecast options itself still takes them (create_model)
    return named + [k for k in getattr(registry, "BASE_ARGS", ()) if k not in named]


def _check_model(model: dict) -> None:
    """Every ``model`` option must be a keyword of the model's constructor."""
    valid = _model_options(model["name"])
    if valid is None:
        return
    unknown = sorted(set(model) - {"name"} - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join('model.' + k for k in unknown)} for model {model['name']!r}; "
                          f"valid options: {', '.join(sorted(valid))}")


def _check_eval(section: EvalConfig) -> None:
    """``eval.suite``: a named suite or a list of metric names; ``eval.baselines``: model names."""
    from stpatch.metrics import METRIC_SUITES, is_metric, list_metrics
    from stpatch.models import list_models

    suite = section.suite
    if isinstance(suite, str) and suite not in METRIC_SUITES:
        raise ConfigError(f"eval.suite {suite!r} is not a metric suite; valid suites: "
                          f"{', '.join(METRIC_SUITES)} (or a list of metric names)")
    if isinstance(suite, list):
        unknown = [name for name in suite if not isinstance(name, str) or not is_metric(name)]
        if unknown:
            raise ConfigError(f"eval.suite: unknown metric(s) {', '.join(map(repr, unknown))}; "
                              f"known metrics: {', '.join(list_metrics())}")
    models = list_models()
    unknown = [name for name in section.baselines if name not in models]
    if unknown:
        raise ConfigError(f"eval.baselines: {', '.join(map(repr, unknown))} not registered model(s); "
                          f"available models: {', '.join(models)}")


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
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


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
