"""Plug-in discovery: import every module of a package so that the modules register themselves.

One mechanism for every registry (models, metrics, data-set families, file formats): a new module
dropped into the package is imported with it, so adding a model, a metric, a data set or a format
needs no edit anywhere else.

>>> import stpatch.metrics
>>> "stpatch.metrics.video" in import_submodules("stpatch.metrics")
True
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["import_submodules"]


def import_submodules(package: str | ModuleType, skip_private: bool = True) -> dict[str, ModuleType]:
    """Import every direct submodule of ``package`` (sorted by name); returns ``{full name: module}``.

    Modules whose name starts with ``_`` are skipped when ``skip_private`` (helpers, ``__main__``).
    """
    pkg = importlib.import_module(package) if isinstance(package, str) else package
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if skip_private and info.name.startswith("_"):
            continue
        name = f"{pkg.__name__}.{info.name}"
        found[name] = importlib.import_module(name)
    return found
