"""One forecasting interface over the two engines, used by ``stpatch predict`` and ``stpatch serve``.

Both take physical units with a mask and return physical units::

    engine.forecast(x (B, t_in, ...), mask, tod=None, dow=None) -> (B, t_out, ...)
    engine.meta, engine.profile    # what the run was trained on (for the data guard)

* ``"torch"``: the checkpoint, through PyTorch (:class:`TorchEngine`);
* ``"onnx"``: the export, through ONNX Runtime (:class:`stpatch.deploy.onnx_engine.OnnxForecaster`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

ENGINES = ("torch", "onnx")


class TorchEngine:
    """A loaded run (:func:`stpatch.load_run`) behind the engine interface."""

    name = "torch"

    def __init__(self, run: Any):
        self.run = run
        self.meta = run.meta
        self.profile = run.profile

    def forecast(self, x: np.ndarray, mask: np.ndarray | None = None, tod: np.ndarray | None = None,
                 dow: np.ndarray | None = None, spatial_shape: tuple | None = None) -> np.ndarray:
        """Physical ``(B, t_in, ...)`` -> physical ``(B, t_out, ...)``; missing values enter as 0 (model units)."""
        import torch

        x = np.asarray(x, dtype=np.float32)
        if mask is None:
            mask = np.isfinite(x)
        scaled = np.where(mask, self.run.scaler.transform(np.where(mask, x, np.float32(0))), np.float32(0))
        batch = {"x": torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32))}
        if tod is not None:
            batch["tod"] = torch.as_tensor(np.asarray(tod, dtype=np.float32))
        if dow is not None:
            batch["dow"] = torch.as_tensor(np.asarray(dow, dtype=np.int64))
        with torch.no_grad():
            out = self._forward(batch, spatial_shape or tuple(x.shape[3:] if x.ndim == 5 else x.shape[2:3]))
        return self.run.scaler.inverse_transform(out).numpy()

    def _forward(self, batch: dict, spatial_shape: tuple) -> Any:
        """The model on ``batch``; a model tied to its training grid says so when the input's grid differs."""
        trained = tuple(self.meta.get("spatial_shape") or ())
        try:
            return self.run.module(batch)
        except RuntimeError as err:
            if self.meta["kind"] != "grid" or not trained or tuple(spatial_shape) == trained:
                raise
            from stpatch.data.guard import DataGuardError

            raise DataGuardError(
                f"the model was trained on a {trained[0]} x {trained[1]} grid and takes only that size; the input is "
                f"{spatial_shape[0]} x {spatial_shape[1]}. Crop or regrid the input to the training grid ({err})"
            ) from err


def open_engine(target: str | Path, engine: str = "torch", threads: int | None = None) -> Any:
    """The forecaster of a run directory / checkpoint (``"torch"``) or of its export (``"onnx"``)."""
    if engine == "torch":
        from stpatch.engine.runs import load_run

        return TorchEngine(load_run(target))
    if engine == "onnx":
        from stpatch.deploy.onnx_engine import OnnxForecaster

        return OnnxForecaster.open(target, threads=threads)
    raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
