"""The built-in data sets, one module per family; the registry imports every module found here.

A family module declares

* ``DATASETS``: a tuple of ``(DatasetInfo, loader)`` pairs, where ``loader(data_dir, info, **options)``
  returns the data (its keyword arguments are the options ``stpatch.datasets.load(name, ...)`` accepts);
* optionally ``after_download(info, data_dir) -> list[Path]``: a step run by
  :func:`stpatch.data.download` once the files of ``info.urls`` are present (a format conversion, say);
  it returns the paths it wrote.

:func:`stpatch.data.registry.discover` imports the modules of this package (``pkgutil``; names starting
with ``_`` are skipped) and registers what they declare, so adding a data set is one new module here
(and its test); the README's data-set table is generated from the registry
(:func:`stpatch.data.registry.dataset_table`).

This package imports nothing at import time, so the older modules (``stpatch.data.moving``,
``stpatch.data.radar`` ...) can re-export the loaders that moved here without an import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any


def moved_attribute(module: str, family: str, names: Iterable[str], name: str) -> Any:
    """For a module ``__getattr__`` (PEP 562): ``name`` from the family module when it is in ``names``.

    Old modules that keep shared helpers a family imports re-export the family's loader this way,
    on first use, because importing it eagerly would be an import cycle.
    """
    if name in names:
        return getattr(importlib.import_module(f"{__name__}.{family}"), name)
    raise AttributeError(f"module {module!r} has no attribute {name!r}")
