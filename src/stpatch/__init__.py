"""stpatch: spatio-temporal forecasting with spacetime patches.

>>> import stpatch, torch
>>> tokens, grid = stpatch.patchify(torch.zeros(2, 10, 1, 64, 64), (2, 8, 8))
>>> tuple(tokens.shape)
(2, 5, 8, 8, 128)

The rest of the public API is loaded on first use, so ``import stpatch`` stays light:
``stpatch.create_model``, ``stpatch.list_models``, ``stpatch.datasets`` (``load``, ``list_datasets``,
adapters), ``stpatch.metrics``, ``stpatch.nn``, ``stpatch.train``, ``stpatch.evaluate``, ``stpatch.predict``,
``stpatch.export``, ``stpatch.features`` (region features), ``stpatch.report`` (``report.html``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# everything, the patch functions included, is imported on first use: `import stpatch` pulls in no PyTorch,
# so the ONNX engine (stpatch.deploy.onnx_engine) runs on NumPy and ONNX Runtime alone
_PATCHES = ("PatchGrid", "group_sensors", "patchify", "patchify_sensors", "time_space_merge", "time_space_partition",
            "unpatchify", "unpatchify_sensors")
_LAZY = {
    **{name: ("stpatch.patches", name) for name in _PATCHES},
    "create_model": ("stpatch.models", "create_model"),
    "list_models": ("stpatch.models", "list_models"),
    "profile_model": ("stpatch.models", "profile_model"),
    "train": ("stpatch.engine.training", "train"),
    "evaluate": ("stpatch.engine.evaluation", "evaluate"),
    "predict": ("stpatch.engine.prediction", "predict"),
    "load_run": ("stpatch.engine.runs", "load_run"),
    "export": ("stpatch.deploy.export", "export"),
    "features": ("stpatch.analysis.features", "features"),
    "report": ("stpatch.report", None),
    "datasets": ("stpatch.datasets", None),
    "metrics": ("stpatch.metrics", None),
    "nn": ("stpatch.nn", None),
    "models": ("stpatch.models", None),
    "anomaly": ("stpatch.anomaly", None),
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'stpatch' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value
