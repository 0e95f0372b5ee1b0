"""Forecasting new data with a trained run (no ground truth needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from stpatch.engine.runs import load_run


def predict(checkpoint: str | Path, data: Any, output: str | Path | None = None, importer: str | None = None,
            strict: bool = False, max_missing: float | None = None, **importer_kwargs: Any) -> np.ndarray:
    """Forecast the ``t_out`` steps after the last ``t_in`` steps of new data (no ground truth needed).

    Args:
        checkpoint: a run directory or ``.ckpt`` file.
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

    The input passes the data guard (:mod:`stpatch.data.guard`) first: Inf and physically impossible
    values are errors, and nothing is written when it refuses. Where NaN means "no coverage" (radar),
    the forecast is NaN where the input steps had no observed value.

    Returns:
        the forecast in physical units, ``(B, T_out, C, H, W)`` or ``(B, T_out, N, C)`` (``B = 1``
        for a single series).
    """
    from stpatch.data import SpatioTemporalData, guard, input_batch, write_forecast
    from stpatch.data.adapters import default_layout, from_numpy, read_array_file

    run = load_run(checkpoint)
    meta = run.meta
    grid = meta["kind"] == "grid"
    layout = "(B, T, C, H, W)" if grid else "(B, T, N, C)"
    # the file's array layout follows the checkpoint's kind (a 3-D array is THW for grids, TNC for sensors)
    if importer is not None:
        from stpatch.data import from_radar

        source = from_radar(data, importer, **importer_kwargs)
    elif importer_kwargs:
        raise ValueError(f"options {sorted(importer_kwargs)} are for reading radar files; pass importer= as well")
    else:
        source = read_array_file(data, kind=meta["kind"]) if isinstance(data, (str, Path)) else None
    if source is not None:
        data = source
    if not isinstance(data, SpatioTemporalData):
        array = np.asarray(data.detach().cpu() if isinstance(data, torch.Tensor) else data)
        if array.ndim not in ((4, 5) if grid else (3, 4)):
            raise ValueError(f"predict expects {layout} (or one series without B) for this checkpoint, got shape {array.shape}")
        data = from_numpy(array, layout=default_layout(array.ndim, meta["kind"]))
    data = guard.conform(data, meta, run.profile, strict=strict)
    t_in = meta["t_in"]
    if min(data.lengths) < t_in:
        raise ValueError(f"the model needs the last {t_in} steps as input, the data holds {min(data.lengths)}")
    # judge only what the model sees: the last t_in steps of every series
    guard.check_values(data, run.profile, [(i, n - t_in, n) for i, n in enumerate(data.lengths)], strict=strict)
    batch = input_batch(data, t_in, run.scaler)  # scaled, missing values masked and zeroed
    guard.check_missing(batch["x_mask"], data, t_in, guard.missing_limit(run.profile, max_missing))
    with torch.no_grad():
        forecast = run.scaler.inverse_transform(_forward(run, batch, data)).numpy()
    forecast = guard.keep_no_coverage(forecast, batch["x_mask"], run.profile)
    if output is not None:
        write_forecast(output, forecast[0] if forecast.shape[0] == 1 else forecast, like=source)
    return forecast


def _forward(run, batch: dict, data) -> torch.Tensor:
    """The model on ``batch``; a model tied to its training grid says so when the input's grid differs."""
    trained = tuple(run.meta.get("spatial_shape") or ())
    try:
        return run.module(batch)
    except RuntimeError as err:
        if run.meta["kind"] != "grid" or not trained or tuple(data.spatial_shape) == trained:
            raise
        from stpatch.data.guard import DataGuardError

        raise DataGuardError(
            f"the model was trained on a {trained[0]} x {trained[1]} grid and takes only that size; the input is "
            f"{data.spatial_shape[0]} x {data.spatial_shape[1]}. Crop or regrid the input to the training grid ({err})"
        ) from err
