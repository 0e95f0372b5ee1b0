"""The one table of metric names: what each name computes, its parameters, inputs and direction.

A metric is registered once, in its field's module (``video``, ``sensor``, ``weather``,
``radar``) or anywhere else, and is then usable by name in :class:`MetricAccumulator`,
:func:`compute_metrics` and suites::

    @register_metric("max_abs_error", higher_is_better=False, finalize=lambda s: s["max"],
                     merge=lambda a, b: {"max": torch.maximum(a["max"], b["max"])})
    def _stats_max_abs(p, t, m):
        return {"max": zero_where_invalid((p - t).abs(), m).amax(dim=other_dims(p))}

Names are plain (``"rmse"``) or patterns with parameters (``"csi@{threshold}"``,
``"fss@{threshold}/{scale}px"``): the text before ``@`` is the family, and each ``{field}`` is
parsed from the name by the converter the metric registers for it (``float`` for a threshold), so
``get_metric("fss@1.0/8px").params == {"threshold": 1.0, "scale": 8}``. A bare family name
(``"csi"``) stands for one metric per value of the accumulator's parameter grid (its
``thresholds`` and ``fss_scale``). Canonical names are the pattern filled with the converted
values (``"csi@2.50"`` -> ``"csi@2.5"``).

Statistics: ``stats(pred, target, mask, **params, **inputs) -> {key: tensor with a leading T
axis}``; batches merge with ``merge`` (default: add key by key) and ``finalize(stats)`` gives
``(T,)`` or ``(T, C)`` values. ``inputs`` names the keyword inputs a metric needs from
:data:`INPUTS` (``lat``, ``climatology``, ``null_value``, ``data_range``).
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from .core import Stats, add_stats, check_range, fin_mean, prepare_climatology

__all__ = [
    "INPUTS",
    "METRIC_SUITES",
    "Metric",
    "MetricInput",
    "MetricRef",
    "get_metric",
    "is_metric",
    "list_metrics",
    "register_input",
    "register_metric",
    "register_suite",
    "unregister_metric",
]

_FIELD = re.compile(r"\{(\w+)\}")
_WORD = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class MetricInput:
    """A keyword input that metrics can ask for, given to :class:`MetricAccumulator`.

    ``prepare(value)`` runs once at construction (``prepare(value, target)`` at each update when
    ``per_update``); ``optional``: None is a meaningful value and no error is raised for it.
    """

    name: str
    doc: str
    prepare: Callable[..., Any] | None = None
    optional: bool = False
    per_update: bool = False


INPUTS: dict[str, MetricInput] = {}


def register_input(name: str, doc: str, *, prepare: Callable[..., Any] | None = None,
                   optional: bool = False, per_update: bool = False) -> MetricInput:
    """Declare a keyword input (``lat``, ``climatology``, ...) that metrics may list in ``inputs``."""
    INPUTS[name] = spec = MetricInput(name, doc, prepare, optional, per_update)
    return spec


register_input("data_range", "value range of the data, max - min", prepare=check_range)
register_input("null_value", "missing-value marker of the targets; NaN/None: only NaN is missing",
               optional=True)
register_input("climatology", "broadcastable to the target", prepare=prepare_climatology, per_update=True)


@dataclass(frozen=True)
class Metric:
    """One registry entry: a plain name or a name pattern and how to compute it."""

    name: str
    stats: Callable[..., Stats]
    higher_is_better: bool
    finalize: Callable[[Stats], torch.Tensor] = fin_mean
    inputs: tuple[str, ...] = ()
    params: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    merge: Callable[[Stats, Stats], Stats] = add_stats
    example: str = ""
    doc: str = ""

    @property
    def family(self) -> str:
        """The name before ``@`` (the whole name of a plain metric)."""
        return self.name.split("@", 1)[0]

    @property
    def param_names(self) -> tuple[str, ...]:
        """The pattern's fields in order (empty for a plain metric)."""
        return tuple(_FIELD.findall(self.name))

    def bind(self, values: Mapping[str, Any]) -> MetricRef:
        """The metric with its parameters converted and the canonical name filled in."""
        params = {p: self.params[p](values[p]) for p in self.param_names}
        return MetricRef(self.name.format(**params), self, MappingProxyType(params))

    def parse(self, name: str) -> MetricRef:
        """``"csi@2.5"`` -> the metric with ``params={"threshold": 2.5}``; ValueError if it does not fit."""
        parts = _FIELD.split(self.name)  # literal, field, literal, ...
        regex = "".join(re.escape(s) if i % 2 == 0 else f"(?P<{s}>.+)" for i, s in enumerate(parts))
        hit = re.fullmatch(regex, name)
        if hit is None:
            raise ValueError(f"metric {name!r} does not fit the pattern {self.name!r} (e.g. {self.example!r})")
        try:
            return self.bind(hit.groupdict())
        except (TypeError, ValueError) as err:
            raise ValueError(f"metric {name!r} (pattern {self.name!r}): {err}") from None


@dataclass(frozen=True)
class MetricRef:
    """A name resolved by :func:`get_metric`: the registry entry and its parameter values.

    A bare family name (``"csi"``) resolves with no parameters (``complete`` is False) and
    :meth:`expand` makes one metric per combination of the given parameter values.
    """

    name: str
    metric: Metric
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.params) == len(self.metric.param_names)

    @property
    def higher_is_better(self) -> bool:
        return self.metric.higher_is_better

    def expand(self, grid: Mapping[str, Sequence[Any]]) -> list[MetricRef]:
        """This metric, or for a bare family one per combination of ``grid`` values (first field outermost)."""
        if self.complete:
            return [self]
        names = self.metric.param_names
        missing = [p for p in names if p not in grid]
        if missing:
            raise ValueError(f"{self.name!r} needs values for {missing}; or name one, e.g. {self.metric.example!r}")
        return [self.metric.bind(dict(zip(names, combo)))
                for combo in itertools.product(*(grid[p] for p in names))]

    def stats(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
              inputs: Mapping[str, Any]) -> Stats:
        return self.metric.stats(pred, target, mask, **self.params, **{k: inputs[k] for k in self.metric.inputs})

    def finalize(self, stats: Stats) -> torch.Tensor:
        return self.metric.finalize(stats)


_METRICS: dict[str, Metric] = {}


def register_metric(name: str, stats: Callable[..., Stats] | None = None, *, higher_is_better: bool,
                    finalize: Callable[[Stats], torch.Tensor] = fin_mean, inputs: Iterable[str] = (),
                    params: Mapping[str, Callable[[Any], Any]] | None = None,
                    merge: Callable[[Stats, Stats], Stats] = add_stats, example: str = "", doc: str = "",
                    replace: bool = False):
    """Add a metric to the table; returns its :class:`Metric`, or a decorator when ``stats`` is left out.

    Args:
        name: ``"rmse"`` or a pattern ``"family@...{field}..."`` (``"fss@{threshold}/{scale}px"``).
        stats: ``stats(pred, target, mask, **params, **inputs) -> Stats`` with a leading T axis;
            ``pred``/``target`` in the working dtype, ``mask`` bool (True = valid) or None.
        higher_is_better: the direction of the score (True for skill scores, False for errors).
        finalize: ``Stats -> (T,)`` or ``(T, C)``; default ``sum / n``.
        inputs: names in :data:`INPUTS` the metric needs (``"lat"``, ``"climatology"``, ...).
        params: a converter per pattern field (``{"threshold": float}``); it parses the text of a
            name and checks values given by a grid, raising ValueError for bad ones.
        merge: how two batches' statistics combine; default: added key by key.
        example: a filled-in name, required for patterns (shown in errors).
        doc: the conventions (default: the docstring of the decorated function).
        replace: allow replacing a metric of the same family.
    """
    if stats is None:
        def decorator(fn: Callable[..., Stats]) -> Callable[..., Stats]:
            register_metric(name, fn, higher_is_better=higher_is_better, finalize=finalize, inputs=inputs,
                            params=params, merge=merge, example=example,
                            doc=doc or inspect.getdoc(fn) or "", replace=replace)
            return fn
        return decorator
    metric = Metric(name, stats, bool(higher_is_better), finalize, tuple(inputs), MappingProxyType(dict(params or {})),
                    merge, example or name, inspect.cleandoc(doc) if doc else "")
    fields = metric.param_names
    if not _WORD.fullmatch(metric.family) or ("@" in name) != bool(fields):
        raise ValueError(f"metric name {name!r}: expected a word ('rmse') or 'family@...{{field}}...' "
                         f"('csi@{{threshold}}')")
    if set(fields) != set(metric.params) or len(set(fields)) != len(fields):
        raise ValueError(f"metric {name!r}: params must give one converter per field {list(fields)}, "
                         f"got {sorted(metric.params)}")
    unknown = [k for k in metric.inputs if k not in INPUTS]
    if unknown:
        raise ValueError(f"metric {name!r}: unknown inputs {unknown}; known: {sorted(INPUTS)}")
    if metric.family in _METRICS and not replace:
        raise ValueError(f"metric {metric.family!r} is registered already ({_METRICS[metric.family].name!r})")
    if fields:
        if not example:
            raise ValueError(f"metric {name!r}: give an example of a filled-in name")
        metric.parse(example)  # the example must fit the pattern
    _METRICS[metric.family] = metric
    return metric


def unregister_metric(name: str) -> Metric:
    """Remove a metric (by name, pattern or family) from the table and return it."""
    family = name.split("@", 1)[0]
    if family not in _METRICS:
        raise ValueError(f"unknown metric {name!r}")
    return _METRICS.pop(family)


def list_metrics() -> list[str]:
    """The registered names and patterns, in registration order."""
    return [m.name for m in _METRICS.values()]


def get_metric(name: str) -> MetricRef:
    """Resolve a metric name: ``"ssim"``, ``"csi@1.0"``, ``"fss@1.0/8px"`` or a bare family ``"csi"``.

    Raises ValueError for unknown names (listing the known names and patterns) and for
    parameters that do not parse.
    """
    if not isinstance(name, str):
        raise TypeError(f"metric names are strings, got {type(name).__name__}")
    family, at, _ = name.partition("@")
    metric = _METRICS.get(family)
    if metric is None or (at and not metric.param_names):
        examples = [m.example for m in _METRICS.values() if m.param_names]
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(list_metrics())}"
                         + (f" (patterns are filled in, e.g. {examples[0]!r})" if examples else ""))
    if not at:
        return MetricRef(name, metric, MappingProxyType({}))
    return metric.parse(name)


def is_metric(name: str) -> bool:
    """Whether ``name`` resolves (a plain name, a filled-in pattern or a bare family)."""
    try:
        get_metric(name)
    except (TypeError, ValueError):
        return False
    return True


#: Named metric suites. ``csi``/``pod``/``far`` expand to one entry per threshold (``"csi@1.0"``)
#: and ``fss`` to one per threshold and scale (``"fss@1.0/8px"``). More with :func:`register_suite`.
METRIC_SUITES: dict[str, tuple[str, ...]] = {
    "video": ("mse_per_frame", "mae_per_frame", "mse_per_pixel", "mae_per_pixel", "rmse",
              "rmse_per_frame", "psnr", "ssim"),
    "sensor": ("masked_mae", "masked_rmse", "masked_mape"),
    "weather": ("lat_weighted_rmse", "lat_weighted_acc"),
    "precip": ("csi", "pod", "far", "fss"),
    # radar nowcasting as usually reported: CSI at 1 and 5 mm/h, FSS at 1 mm/h over 8 px, MAE in mm/h
    "radar": ("csi@1.0", "csi@5.0", "fss@1.0/8px", "mae_per_pixel"),
}


def register_suite(name: str, metrics: Iterable[str], *, replace: bool = False) -> tuple[str, ...]:
    """Name a suite of metrics (each must resolve) for :class:`MetricAccumulator`."""
    names = tuple(metrics)
    for metric in names:
        get_metric(metric)
    if name in METRIC_SUITES and not replace:
        raise ValueError(f"metric suite {name!r} exists already: {METRIC_SUITES[name]}")
    METRIC_SUITES[name] = names
    return names
