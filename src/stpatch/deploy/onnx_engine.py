"""Forecasting with an exported model through ONNX Runtime: NumPy and ``onnxruntime`` only.

Nothing here imports PyTorch (a test checks ``sys.modules``), so a forecasting host needs only
``numpy`` and ``onnxruntime``. The sidecar ``model.json`` written by :func:`stpatch.deploy.export`
says what the graph expects; the scaling between physical and model units is done here in NumPy
from the scaler's saved parameters, with the same formulas as :mod:`stpatch.data.scalers`
(a test compares the two for every scaler type).

Usage (needs an exported run, so not a doctest)::

    from stpatch.deploy.onnx_engine import OnnxForecaster
    model = OnnxForecaster.open("runs/demo")
    model.forecast(x, mask)   # (B, t_in, C, H, W) physical -> (B, t_out, C, H, W) physical
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

__all__ = ["OnnxForecaster", "resolve_export", "scale", "unscale"]

SIDECAR_FORMAT = "stpatch-onnx"


def resolve_export(target: str | Path) -> Path:
    """``model.onnx`` of a run directory (``RUN/export/``), an export folder, or the file itself."""
    path = Path(target)
    for candidate in (path / "export" / "model.onnx", path / "model.onnx", path):
        if candidate.is_file() and candidate.suffix == ".onnx":
            return candidate
    if path.is_file():
        raise FileNotFoundError(f"{path} is not an ONNX model (.onnx); the ONNX engine needs `stpatch export` output")
    raise FileNotFoundError(f"no model.onnx in {path} or {path / 'export'}; run `stpatch export {path}` first")


# ------------------------------------------------------------------ scaling (NumPy twin of data/scalers.py)
def _param(state: dict, key: str, x: np.ndarray) -> np.ndarray:
    p = np.asarray(state["params"][key], dtype=np.float64)
    axis = int(state["channel_axis"])
    shape = [1] * (-axis)
    shape[0] = p.size
    return p.reshape(shape).astype(x.dtype, copy=False)


def _standardize(state: dict, y: np.ndarray, inverse: bool) -> np.ndarray:
    if not state["options"].get("standardize", True) or "mean" not in state["params"]:
        return y
    mean, std = _param(state, "mean", y), _param(state, "std", y)
    return y * std + mean if inverse else (y - mean) / std


def scale(state: dict, x: np.ndarray) -> np.ndarray:
    """Physical units -> model units, as ``scaler_from_state(state).transform(x)``; NaN stays NaN."""
    x = np.asarray(x, dtype=np.float32)
    kind, opts = state["type"], state.get("options", {})
    if kind == "IdentityScaler":
        return x
    if kind == "StandardScaler":
        return (x - _param(state, "mean", x)) / _param(state, "std", x)
    if kind == "MinMaxScaler":
        return (x - _param(state, "min", x)) * _param(state, "scale", x) + _param(state, "offset", x)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "LogScaler":
            return _standardize(state, np.log(x + np.float32(opts["offset"])), inverse=False)
        if kind == "DBScaler":
            y = 10.0 * np.log10(np.maximum(x, np.float32(opts["threshold"])))
            y = np.where(x >= opts["threshold"], y, opts["zerovalue"]).astype(x.dtype, copy=False)
            return _standardize(state, np.where(np.isnan(x), x, y), inverse=False)
    raise ValueError(f"the ONNX engine has no NumPy scaling for {kind}; use the torch engine")


def unscale(state: dict, y: np.ndarray) -> np.ndarray:
    """Model units -> physical units, as ``scaler_from_state(state).inverse_transform(y)``."""
    y = np.asarray(y, dtype=np.float32)
    kind, opts = state["type"], state.get("options", {})
    if kind == "IdentityScaler":
        return y
    if kind == "StandardScaler":
        return y * _param(state, "std", y) + _param(state, "mean", y)
    if kind == "MinMaxScaler":
        return (y - _param(state, "offset", y)) / _param(state, "scale", y) + _param(state, "min", y)
    if kind == "LogScaler":
        return np.exp(_standardize(state, y, inverse=True)) - np.float32(opts["offset"])
    if kind == "DBScaler":
        r = np.power(10.0, _standardize(state, y, inverse=True) / 10.0).astype(y.dtype, copy=False)
        keep = (r >= opts["threshold"] * (1 - 1e-6)) | np.isnan(r)
        return np.where(keep, r, 0.0).astype(y.dtype, copy=False)
    raise ValueError(f"the ONNX engine has no NumPy scaling for {kind}; use the torch engine")


class OnnxForecaster:
    """An exported run: ``forecast(x, mask)`` in physical units through ONNX Runtime.

    Attributes:
        sidecar: the export's ``model.json`` (t_in, t_out, channels, layout, scaler, units, ...).
        meta: what the run was trained on (kind, in_channels, t_in, t_out, spatial_shape, num_nodes).
        profile: the training split's data profile (for the data guard), or None.
        time_inputs: the graph's time-feature inputs (``["tod", "dow"]`` or a part of it, or empty).
    """

    name = "onnx"

    def __init__(self, onnx_path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(onnx_path)
        sidecar_path = self.path.with_suffix(".json")
        if not sidecar_path.is_file():
            raise FileNotFoundError(f"{sidecar_path} (the sidecar of {self.path.name}) is missing; re-run `stpatch export`")
        self.sidecar = json.loads(sidecar_path.read_text())
        if self.sidecar.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"{sidecar_path} is not an stpatch export sidecar (format {self.sidecar.get('format')!r})")
        self.meta = self.sidecar["meta"]
        self.profile = self.sidecar.get("profile")
        self.time_inputs = list(self.sidecar.get("time_inputs", []))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        # the exporter drops inputs a graph does not read (a fitted climatology reads only the time of day)
        self._graph_inputs = {i.name for i in self.session.get_inputs()}
        self._lock = threading.Lock()  # one run at a time: ORT sessions are thread-safe, but this keeps CPU use bounded

    @classmethod
    def open(cls, target: str | Path, threads: int | None = None) -> OnnxForecaster:
        """From a run directory (``RUN/export/model.onnx``), an export folder or a ``.onnx`` file."""
        return cls(resolve_export(target), threads=threads)

    def run_scaled(self, x: np.ndarray, tod: np.ndarray | None = None, dow: np.ndarray | None = None) -> np.ndarray:
        """The graph on model-unit input ``x`` ``(B, t_in, C, H, W)`` / ``(B, t_in, N, C)`` -> ``(B, t_out, ...)``."""
        self._check_shape(x.shape)
        feeds = {"x": np.ascontiguousarray(x, dtype=np.float32)}
        given = {"tod": tod, "dow": dow}
        for name in self.time_inputs:
            if given[name] is None:
                raise ValueError(f"this model was trained with time features ({', '.join(self.time_inputs)}): "
                                 "give the input's times (timestamps, or tod/dow of shape (B, t_in))")
            dtype = np.float32 if name == "tod" else np.int64
            value = np.asarray(given[name], dtype=dtype)
            if value.shape != x.shape[:2]:
                raise ValueError(f"{name} should have shape (B, t_in) = {tuple(x.shape[:2])}, got {value.shape}")
            feeds[name] = value
        with self._lock:
            out = self.session.run(None, {k: v for k, v in feeds.items() if k in self._graph_inputs})[0]
        if out.shape[0] != x.shape[0]:  # a graph without x cannot see the batch size from x alone
            raise ValueError(f"the ONNX graph returned {out.shape[0]} forecasts for {x.shape[0]} inputs")
        return out

    def forecast(self, x: np.ndarray, mask: np.ndarray | None = None, tod: np.ndarray | None = None,
                 dow: np.ndarray | None = None, spatial_shape: tuple | None = None) -> np.ndarray:
        """Physical-unit input ``(B, t_in, ...)`` -> physical-unit forecast ``(B, t_out, ...)``.

        ``mask`` (bool like ``x``, True = observed; default: the finite values) marks what was observed:
        missing values enter the model as 0 in model units, as in training.
        """
        x = np.asarray(x, dtype=np.float32)
        if mask is None:
            mask = np.isfinite(x)
        scaled = np.where(mask, scale(self.sidecar["scaler"], np.where(mask, x, 0.0)), 0.0).astype(np.float32)
        return unscale(self.sidecar["scaler"], self.run_scaled(scaled, tod, dow))

    def _check_shape(self, shape: tuple) -> None:
        expected = self.sidecar["input_shape"]  # [null, t_in, ...]
        if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
            want = "(B, " + ", ".join(str(e) for e in expected[1:]) + ")"
            layout = self.sidecar["layout"]
            extra = ""
            if self.meta["kind"] == "grid" and len(shape) == 5 and tuple(shape[-2:]) != tuple(expected[-2:]):
                extra = (f": the model was trained on a {expected[-2]} x {expected[-1]} grid and takes only that size. "
                         "Crop or regrid the input to the training grid")
            raise ValueError(f"the ONNX model takes {layout} = {want}, got {tuple(shape)}{extra}")
