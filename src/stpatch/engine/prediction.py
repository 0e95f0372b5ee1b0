"""Forecasting new data with a trained run (no ground truth needed).

One path for every engine and for the HTTP service: :func:`prepare_input` reads and guards the input
and builds the model's batch (physical units, missing values masked and zeroed), an engine
(:func:`stpatch.deploy.engines.open_engine`: PyTorch or ONNX Runtime) scales it, forecasts and scales
back, and :func:`stpatch.data.guard.keep_no_coverage` restores "no coverage".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def predict(checkpoint: str | Path, data: Any, output: str | Path | None = None, importer: str | None = None,
            strict: bool = False, max_missing: float | None = None, engine: str = "torch",
            **importer_kwargs: Any) -> np.ndarray:
    """Forecast the ``t_out`` steps after the last ``t_in`` steps of new data (no ground truth needed).

    Args:
        checkpoint: a run directory or ``.ckpt`` file; with ``engine="onnx"``, a run directory with an
            export (``stpatch export``), an export folder or a ``model.onnx``.
        data: a file (``.npy``/``.npz``/NetCDF/CSV, read like the training data), a
            ``SpatioTemporalData``, or an array in the canonical layout: ``(T, C, H, W)`` /
            ``(B, T, C, H, W)`` for grids, ``(T, N, C)`` / ``(B, T, N, C)`` for sensors, in physical units;
            with ``importer``, radar files: a glob (``"radar/*.h5"``), a folder or a list of files.
        output: where to write the forecast, in the same family of format as the input file
            (``.nc`` for radar: rain rate with the input's projected coordinates and continued times).
        importer: a pysteps importer name (``"odim_hdf5"``, ``"mch_gif"`` ...): ``data`` is read with
            :func:`stpatch.datasets.from_radar` (``importer_kwargs``: its options, e.g. ``downsample=4,
            crop=128`` to match the training grid, and the importer's own).
        strict: refuse (instead of warning about) input far outside what training saw, or with another
            time step or grid than the training data's.
        max_missing: the share of the input steps' values that may be missing (default: 0.5, or the
            training split's share + 0.1 when that is higher); an input with no observed value is refused.
        engine: ``"torch"`` (the checkpoint) or ``"onnx"`` (the exported model through ONNX Runtime,
            scaling in NumPy: no PyTorch on the forecasting path).

    The input passes the data guard (:mod:`stpatch.data.guard`) first: Inf and physically impossible
    values are errors, and nothing is written when it refuses. Where NaN means "no coverage" (radar),
    the forecast is NaN where the input steps had no observed value.

    Returns:
        the forecast in physical units, ``(B, T_out, C, H, W)`` or ``(B, T_out, N, C)`` (``B = 1``
        for a single series).
    """
    from stpatch.data import from_radar, guard, write_forecast
    from stpatch.data.adapters import read_array_file
    from stpatch.deploy.engines import open_engine

    model = open_engine(checkpoint, engine)
    if importer is not None:
        source = from_radar(data, importer, **importer_kwargs)
    elif importer_kwargs:
        raise ValueError(f"options {sorted(importer_kwargs)} are for reading radar files; pass importer= as well")
    else:
        # the file's array layout follows the checkpoint's kind (a 3-D array is THW for grids, TNC for sensors)
        source = read_array_file(data, kind=model.meta["kind"]) if isinstance(data, (str, Path)) else None
    batch, data = prepare_input(model.meta, model.profile, data if source is None else source,
                                strict=strict, max_missing=max_missing)
    forecast = model.forecast(batch["x"], batch["x_mask"], batch.get("tod"), batch.get("dow"),
                              spatial_shape=tuple(data.spatial_shape))
    forecast = guard.keep_no_coverage(forecast, batch["x_mask"], model.profile)
    if output is not None:
        write_forecast(output, forecast[0] if forecast.shape[0] == 1 else forecast, like=source)
    return forecast


def prepare_input(meta: dict, profile: dict | None, data: Any, strict: bool = False,
                  max_missing: float | None = None, who: str = "the input") -> tuple[dict, Any]:
    """Guard ``data`` (an array in the canonical layout or a ``SpatioTemporalData``) for a run trained on
    ``meta``/``profile`` and take the model's input from it.

    Returns ``(batch, data)``: ``batch`` holds NumPy arrays ``"x"`` ``(S, t_in, ...)`` in physical units
    with missing values set to 0, ``"x_mask"`` (bool like ``x``, True = observed) and, when the data has
    times, ``"tod"``/``"dow"`` ``(S, t_in)``; ``data`` is the conformed ``SpatioTemporalData``. Raises
    :class:`~stpatch.data.guard.DataGuardError` (a ``ValueError``) saying what was expected and what came.
    """
    from stpatch.data import SpatioTemporalData, guard, input_batch
    from stpatch.data.adapters import default_layout, from_numpy

    grid = meta["kind"] == "grid"
    layout = "(B, T, C, H, W)" if grid else "(B, T, N, C)"
    if not isinstance(data, SpatioTemporalData):
        if hasattr(data, "detach"):  # a torch tensor
            data = data.detach().cpu().numpy()
        array = np.asarray(data)
        if array.ndim not in ((4, 5) if grid else (3, 4)):
            raise guard.DataGuardError(
                f"{who}: predict expects {layout} (or one series without B) for this model, got shape {array.shape}")
        data = from_numpy(array, layout=default_layout(array.ndim, meta["kind"]))
    data = guard.conform(data, meta, profile, strict=strict, who=who)
    t_in = meta["t_in"]
    if min(data.lengths) < t_in:
        raise guard.DataGuardError(f"{who}: the model needs the last {t_in} steps as input, "
                                   f"the data holds {min(data.lengths)}")
    # judge only what the model sees: the last t_in steps of every series
    guard.check_values(data, profile, [(i, n - t_in, n) for i, n in enumerate(data.lengths)], strict=strict,
                       who=who)
    batch = {k: v.numpy() for k, v in input_batch(data, t_in, None).items()}  # physical, missing zeroed
    guard.check_missing(batch["x_mask"], data, t_in, guard.missing_limit(profile, max_missing), who=who)
    return batch, data
