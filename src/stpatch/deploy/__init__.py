"""Deploying a trained run: ONNX export, forecasting through ONNX Runtime, and the HTTP service.

* :mod:`stpatch.deploy.export`: ``export(run, path=None, format="onnx")`` -> ``model.onnx`` + ``model.json``
* :mod:`stpatch.deploy.onnx_engine`: :class:`OnnxForecaster`, NumPy + ONNX Runtime only (no PyTorch)
* :mod:`stpatch.deploy.engines`: one forecasting interface over both engines (``open_engine``)
* :mod:`stpatch.deploy.serve`: the FastAPI app behind ``stpatch serve``
* :mod:`stpatch.deploy.batcher`: the async micro-batcher with a bounded queue
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export": ("stpatch.deploy.export", "export"),
    "NOT_EXPORTABLE": ("stpatch.deploy.export", "NOT_EXPORTABLE"),
    "ExportError": ("stpatch.deploy.export", "ExportError"),
    "OnnxForecaster": ("stpatch.deploy.onnx_engine", "OnnxForecaster"),
    "open_engine": ("stpatch.deploy.engines", "open_engine"),
    "create_app": ("stpatch.deploy.serve", "create_app"),
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'stpatch.deploy' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    return getattr(importlib.import_module(module_name), attribute)
