"""Export a trained run to ONNX: ``model.onnx`` (dynamic batch axis) plus a ``model.json`` sidecar.

The graph maps model-unit input to model-unit output, ``x (B, t_in, C, H, W) -> (B, t_out, C, H, W)``
or ``(B, t_in, N, C) -> (B, t_out, N, C)`` (plus ``tod``/``dow`` ``(B, t_in)`` when the run was trained
with time features); the sidecar says everything a caller on another stack needs around it: sizes,
layout, the scaler and its parameters, units, the base forecast, the input names, and the parity
measured at export (ONNX Runtime against PyTorch, max abs difference in model units, which must be
below ``tolerance``, 1e-4 by default, or the export fails and nothing is written).

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. On torch 2.13 (CPU) both
exporters give the same graphs within 1e-6 for the stpnet family, stpnet_sensor and the baselines, but
the dynamo exporter (it needs ``onnxscript``) takes 10-15 s per model against about 1 s; pass
``dynamo=True`` to use it. Neither translates ``adaptive_avg_pool3d`` (the stpnet conv net's skip
fusion): during export it is replaced by the equivalent fixed ``avg_pool3d`` (the sizes divide
evenly there, so the result is the same; other sizes are refused).

Models that cannot be exported are in :data:`NOT_EXPORTABLE`, with the reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stpatch.atomic import atomic_path, write_json
from stpatch.deploy.onnx_engine import SIDECAR_FORMAT

__all__ = ["NOT_EXPORTABLE", "ExportError", "export", "export_model"]

#: registry models that have no ONNX graph, and why
NOT_EXPORTABLE = {
    "extrapolation": "pysteps' optical flow (OpenCV Lucas-Kanade) and semi-Lagrangian advection run in NumPy "
                     "outside PyTorch, so there is no graph to export (also as a base forecast)",
}
FORMATS = ("onnx",)
OPSET = 17
_META_KEYS = ("kind", "in_channels", "t_in", "t_out", "spatial_shape", "num_nodes", "suite", "dataset")
_PATCH_LOCK = threading.Lock()


class ExportError(ValueError):
    """A run or model that cannot be exported, or whose export does not reproduce PyTorch's output."""


@contextlib.contextmanager
def _exportable_pooling() -> Iterator[None]:
    """``F.adaptive_avg_pool3d`` as a fixed ``avg_pool3d`` while exporting (ONNX has no adaptive 3-D pool).

    Exact where the input sizes are multiples of the output's (the stpnet skip fusion: strided stages).
    """
    functional = torch.nn.functional
    original = functional.adaptive_avg_pool3d

    def fixed_pool(x: torch.Tensor, output_size: Any) -> torch.Tensor:
        size = [int(s) for s in (output_size if isinstance(output_size, Sequence) else [output_size] * 3)]
        have = [int(s) for s in x.shape[-3:]]
        if any(h % s for h, s in zip(have, size)):
            raise ExportError(f"adaptive_avg_pool3d from {have} to {size} has no exact ONNX equivalent")
        kernel = [h // s for h, s in zip(have, size)]
        return functional.avg_pool3d(x, kernel, stride=kernel)

    with _PATCH_LOCK:
        functional.adaptive_avg_pool3d = fixed_pool
        try:
            yield
        finally:
            functional.adaptive_avg_pool3d = original


class _Graph(nn.Module):
    """The forecaster with a fixed positional signature ``(x, *time_inputs)`` for the exporter."""

    def __init__(self, model: nn.Module, time_inputs: Sequence[str]):
        super().__init__()
        self.model = model
        self.time_inputs = tuple(time_inputs)

    def forward(self, x: torch.Tensor, *times: torch.Tensor) -> torch.Tensor:  # (B, t_in, ...) -> (B, t_out, ...)
        return self.model(x, **dict(zip(self.time_inputs, times)))


def _example(shape: Sequence[int], time_inputs: Sequence[str], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random model-unit input ``shape`` (about N(0, 1), as scaled data) and time features ``(B, t_in)``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    times = {"tod": torch.rand(shape[0], shape[1], generator=g),
             "dow": torch.randint(0, 7, (shape[0], shape[1]), generator=g)}
    return (x, *(times[k] for k in time_inputs))


def check_exportable(name: str, base: str | None = None) -> None:
    """Raise :class:`ExportError` naming the reason when model ``name`` (or its ``base``) has no ONNX graph."""
    for what, key in (("the model", name), ("its base forecast", base)):
        if key in NOT_EXPORTABLE:
            raise ExportError(f"{what} {key!r} cannot be exported to ONNX: {NOT_EXPORTABLE[key]}. "
                              f"Exportable: every other registry model; use the torch engine for this run")


def export_model(model: nn.Module, input_shape: Sequence[int], path: str | Path, time_inputs: Sequence[str] = (),
                 dynamo: bool = False, tolerance: float = 1e-4, opset: int = OPSET) -> dict:
    """Export ``model`` (in eval mode) to ``path`` with a dynamic batch axis and check it against PyTorch.

    Args:
        input_shape: an example input shape ``(B, t_in, C, H, W)`` or ``(B, t_in, N, C)``.
        time_inputs: the forward's time-feature arguments to make graph inputs (``"tod"``, ``"dow"``).
        tolerance: the largest max-abs difference (model units) between ONNX Runtime and PyTorch, on
            random inputs of batch 1 and 3, that is accepted; above it nothing is written.

    Returns ``{"max_abs_diff": float, "batches": [1, 3], "exporter": ..., "inputs": the graph's input names}``
    (time inputs the graph does not read are dropped by the exporter).
    """
    import onnxruntime as ort

    # the wrapper too must be in eval mode: the exporter restores the wrapper's mode afterwards, and a
    # fresh module is in training mode, which would switch dropout on in the caller's model
    graph = _Graph(model, time_inputs).eval()
    names = ["x", *time_inputs]
    example = _example(input_shape, time_inputs)
    exporter = "dynamo" if dynamo else "torchscript"
    buffer = io.BytesIO()
    try:
        with _exportable_pooling(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if dynamo:
                batch = torch.export.Dim("batch", min=1, max=65536)
                program = torch.onnx.export(graph, example, input_names=names, output_names=["forecast"],
                                            dynamic_shapes=({0: batch}, tuple({0: batch} for _ in time_inputs)),
                                            dynamo=True,
                                            opset_version=max(opset, 18))
                buffer.write(program.model_proto.SerializeToString())
            else:
                axes = {n: {0: "batch"} for n in [*names, "forecast"]}
                torch.onnx.export(graph, example, buffer, input_names=names, output_names=["forecast"],
                                  dynamic_axes=axes, opset_version=opset, dynamo=False)
    except ExportError:
        raise
    except Exception as err:  # the exporters raise many types; say which model failed and why
        raise ExportError(f"{type(model).__name__} could not be exported to ONNX ({exporter} exporter): "
                          f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    data = buffer.getvalue()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    # the exporter drops inputs the graph does not read (a climatology without time of day, ...)
    present = [i.name for i in session.get_inputs()]
    worst = 0.0
    for b, seed in ((1, 1), (3, 2)):  # another batch size than the example's: the batch axis is dynamic
        inputs = _example((b, *input_shape[1:]), time_inputs, seed)
        with torch.no_grad():
            expected = graph(*inputs).numpy()
        got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs) if n in present})[0]
        if got.shape != expected.shape:
            raise ExportError(f"the ONNX graph gives shape {got.shape} for batch {b}, PyTorch {expected.shape}")
        worst = max(worst, float(np.max(np.abs(got - expected))))
    if not worst <= tolerance:  # also catches NaN
        raise ExportError(f"ONNX Runtime differs from PyTorch by {worst:.3g} (max abs, model units), more than "
                          f"the tolerance {tolerance:g}; nothing was written")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return {"max_abs_diff": worst, "tolerance": tolerance, "batches": [1, 3], "exporter": exporter, "opset": opset,
            "inputs": present}


def _time_inputs(run: Any) -> list[str]:
    """The time features the run's model reads and its training data had (timestamps known)."""
    takes = list(getattr(run.module, "_time_features", []))
    if takes and not run.profile:
        # a run saved before runs kept a data profile: whether it trained with timestamps is unknown
        warnings.warn(f"{run.checkpoint}: the run has no data profile (trained before stpatch stored one), so it is "
                      f"unknown whether it trained with timestamps; the model's time inputs {takes} are left out of "
                      "the export and its ONNX forecasts ignore the calendar. Retrain the run to export them.",
                      UserWarning, stacklevel=3)
    had_times = bool((run.profile or {}).get("step_seconds"))
    return takes if had_times else []


def export(run: str | Path, path: str | Path | None = None, format: str = "onnx", dynamo: bool = False,
           tolerance: float = 1e-4) -> Path:
    """Export a trained run (directory or checkpoint) to ``path`` (default ``RUN/export/model.onnx``).

    Writes ``model.onnx`` and its sidecar ``model.json`` (same name, ``.json``), both atomically, and
    returns the ``.onnx`` path. Raises :class:`ExportError` for models in :data:`NOT_EXPORTABLE` or when
    ONNX Runtime does not reproduce PyTorch within ``tolerance``.
    """
    from stpatch.engine.runs import load_run

    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    loaded = load_run(run)
    options = dict(loaded.config.model)
    check_exportable(options.get("name"), options.get("base"))
    meta = loaded.meta
    grid = meta["kind"] == "grid"
    sizes = [int(s) for s in meta["spatial_shape"]] if grid else [int(meta["num_nodes"])]
    channels = int(meta["in_channels"])
    tail = [channels, *sizes] if grid else [*sizes, channels]
    if path is None:
        source = Path(run)
        path = (source if source.is_dir() else source.parent.parent) / "export" / "model.onnx"
    path = Path(path)
    if path.suffix != ".onnx":
        path = path / "model.onnx"
    time_inputs = _time_inputs(loaded)
    parity = export_model(loaded.module.model, [2, meta["t_in"], *tail], path, time_inputs, dynamo=dynamo,
                          tolerance=tolerance)
    graph_inputs = parity.pop("inputs")
    time_inputs = [k for k in time_inputs if k in graph_inputs]
    channels_info = (loaded.profile or {}).get("channels") or []
    sidecar = {
        "format": SIDECAR_FORMAT, "version": 1, "onnx": path.name,
        "model": options, "base": options.get("base"),
        "kind": meta["kind"], "layout": "(B, T, C, H, W)" if grid else "(B, T, N, C)",
        "t_in": int(meta["t_in"]), "t_out": int(meta["t_out"]), "channels": channels,
        "grid": sizes if grid else None, "num_nodes": None if grid else sizes[0],
        "input_shape": [None, int(meta["t_in"]), *tail], "output_shape": [None, int(meta["t_out"]), *tail],
        "inputs": graph_inputs, "time_inputs": time_inputs, "output": "forecast",
        "units": [ch.get("units") for ch in channels_info] or None,
        "channel_names": [ch.get("name") for ch in channels_info] or None,
        "scaler": loaded.scaler.state_dict(),
        "scaling": "x_model = scaler(x_physical); missing values enter as 0 in model units; "
                   "forecast_physical = inverse(forecast_model)",
        "meta": {k: meta.get(k) for k in _META_KEYS},
        "profile": loaded.profile,
        "parity": parity,
        "checkpoint": str(loaded.checkpoint),
    }
    write_json(path.with_suffix(".json"), json.loads(json.dumps(sidecar, default=_plain)))
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
