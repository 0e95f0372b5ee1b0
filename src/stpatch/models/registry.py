"""A registry of forecasters: ``create_model(name, **kwargs)``, ``list_models()``, ``@register_model``.

The constructor convention, shared by every registered model::

    create_model(name, in_channels=C, t_in=T_in, t_out=T_out, **options)            # grids
    create_model(name, in_channels=C, t_in=T_in, t_out=T_out, num_nodes=N,
                 coords=None, adjacency=None, **options)                              # sensors

A grid model maps ``(B, T_in, C, H, W) -> (B, T_out, C, H, W)``; a sensor model
``(B, T_in, N, C) -> (B, T_out, N, C)``. The context arguments ``num_nodes``, ``coords``,
``adjacency`` and ``grid_size`` (``(H, W)``) are passed only to models whose constructor takes
them, so one call works for every model. Every model class has ``kind = "grid"`` or ``"sensor"``.

Any learned model also takes ``base=`` (``"persistence"``, ``"linear"``, ``"climatology"``, ...,
or ``"none"``), ``base_options=``, ``feed_base=``, ``scale_correction=``, ``balance_leads=``, ``val_gain=`` and ``members=``: it is then built as a correction on that
base forecast (:mod:`stpatch.models.base_forecast`).
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

__all__ = ["BASE_ARGS", "CONTEXT_ARGS", "ModelEntry", "create_model", "get_model_entry", "list_models", "register_model"]

CONTEXT_ARGS = ("num_nodes", "coords", "adjacency", "grid_size")
BASE_ARGS = ("base", "base_options", "feed_base", "scale_correction", "balance_leads", "val_gain", "members")
F = TypeVar("F", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    Attributes:
        name: registry name.
        factory: class or function that builds it.
        kind: ``"grid"`` or ``"sensor"``: the layout it is meant for.
        kinds: every layout it accepts (baselines accept both).
        description: first line of the factory's docstring.
    """

    name: str
    factory: Callable[..., nn.Module]
    kind: str
    kinds: tuple[str, ...]
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str | None = None, *, kind: str | None = None, kinds: tuple[str, ...] | None = None
) -> Callable[[F], F]:
    """Decorator that registers a model class or factory function under ``name``.

    ``kind`` defaults to the class attribute ``kind`` (for a function, to its return class's,
    or ``"grid"``); ``kinds`` to the class attribute ``supported_kinds`` or ``(kind,)``.

    >>> @register_model("my_persistence_doc", kind="grid")
    ... def my_persistence(in_channels=1, t_in=1, t_out=1):
    ...     from stpatch.models.baselines import Persistence
    ...     return Persistence(in_channels, t_in, t_out)
    >>> "my_persistence_doc" in list_models()
    True
    >>> _ = _REGISTRY.pop("my_persistence_doc")
    """

    def decorate(factory: F) -> F:
        key = name or factory.__name__.lower()
        if key in _REGISTRY and _REGISTRY[key].factory is not factory:
            raise ValueError(f"a model named {key!r} is already registered ({_REGISTRY[key].factory})")
        k = kind or getattr(factory, "kind", None) or "grid"
        if k not in ("grid", "sensor"):
            raise ValueError(f"model kind must be 'grid' or 'sensor', got {k!r}")
        ks = tuple(kinds or getattr(factory, "supported_kinds", None) or (k,))
        doc = inspect.getdoc(factory) or ""
        _REGISTRY[key] = ModelEntry(key, factory, k, ks, doc.splitlines()[0] if doc else "")
        return factory

    return decorate


def list_models(pattern: str | None = None, kind: str | None = None) -> list[str]:
    """Sorted names of the registered models.

    Args:
        pattern: shell-style filter, e.g. ``"stpnet*"``.
        kind: ``"grid"`` or ``"sensor"``: only models that accept that layout.
    """
    names = sorted(_REGISTRY)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    if kind is not None:
        names = [n for n in names if kind in _REGISTRY[n].kinds]
    return names


def get_model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` of ``name``; ValueError listing the available models if unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(list_models())}") from None


def _accepted(factory: Callable[..., Any]) -> set[str]:
    """Parameter names a factory lists explicitly (context args must be named to be passed)."""
    return set(inspect.signature(factory).parameters)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``.

    Args:
        name: one of :func:`list_models`.
        **kwargs: ``in_channels``, ``t_in``, ``t_out``, for sensor models ``num_nodes`` (and
            optionally ``coords (N, 2)``, ``adjacency (N, N)``), for grids optionally
            ``grid_size (H, W)``, then model options. Context arguments a model does not name in
            its signature are dropped; a misspelt option is a TypeError. ``base``,
            ``base_options``, ``feed_base``, ``scale_correction``, ``balance_leads``, ``val_gain`` and ``members`` build the model as a correction on a base forecast
            (see :func:`stpatch.models.base_forecast.create_based`).

    >>> model = create_model("persistence", in_channels=1, t_in=4, t_out=2, num_nodes=None)
    >>> type(model).__name__
    'Persistence'
    """
    entry = get_model_entry(name)
    accepted = _accepted(entry.factory)
    if any(key in kwargs for key in BASE_ARGS) and "base" not in accepted:
        from stpatch.models.base_forecast import create_based

        return create_based(name, **kwargs)
    for key in CONTEXT_ARGS:
        if key in kwargs and key not in accepted:
            kwargs.pop(key)
    return entry.factory(**kwargs)
