"""Spatial features of every region: one vector per spatial patch of a grid (or per sensor), pooled over windows.

A grid region is one spatial patch: the cell of the token grid whose vector the patch head turns into
that patch's forecast (after the attention blocks and the decoder; models without a patch head give
the cells of ``forward_features``), with its pixel box and, where the data has coordinates,
latitude/longitude bounds. A sensor's vector is the per-sensor representation the sensor
forecaster's output head reads. Both are averaged over the time tokens and over every input window given.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stpatch.analysis.inputs import as_run, run_batches, run_data, spatial_coords
from stpatch.nn.heads import PatchHead

__all__ = ["RegionFeatures", "features", "load_features", "region_features_of", "with_geometry"]


@dataclass
class RegionFeatures:
    """Pooled features of every region.

    Attributes:
        values: grids ``(nY, nX, D)``, sensors ``(N, D)``.
        kind: ``"grid"`` or ``"sensor"``.
        boxes: grids ``(nY, nX, 4)`` pixel boxes ``y0, y1, x0, x1`` (end exclusive); sensors None.
        lat_bounds, lon_bounds: grids ``(nY, 2)`` / ``(nX, 2)`` min/max of each row/column of regions, when known.
        coords: sensors ``(N, 2)`` latitude, longitude, when known.
        windows: how many input windows were pooled.
    """

    values: np.ndarray
    kind: str
    boxes: np.ndarray | None = None
    lat_bounds: np.ndarray | None = None
    lon_bounds: np.ndarray | None = None
    coords: np.ndarray | None = None
    windows: int = 0
    attrs: dict = field(default_factory=dict)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """``(nY, nX)`` for grids, ``(N,)`` for sensors."""
        return tuple(self.values.shape[:-1])

    def flat(self) -> np.ndarray:
        """``(R, D)``: one row per region, row-major over ``(nY, nX)``."""
        return self.values.reshape(-1, self.values.shape[-1])

    def index(self, region: int | tuple[int, int]) -> int:
        """The flat index of a region given as ``(iy, ix)`` (grids) or an index."""
        if isinstance(region, tuple):
            return int(np.ravel_multi_index(region, self.grid_shape))
        return int(region)

    def similar(self, region: int | tuple[int, int], k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` regions most like ``region`` (itself first): ``(flat index, cosine similarity)``.

        Similarity is the cosine between feature vectors centred on the mean over regions, so that
        what every region shares does not make them all alike.
        """
        q = self.index(region)
        x = self.flat().astype(np.float64)
        x = x - x.mean(0)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sim = x @ x[q]
        # the query itself first even where another region's vector is identical to it
        order = sorted(range(len(sim)), key=lambda i: (-round(float(sim[i]), 12), i != q))
        return [(int(i), float(sim[i])) for i in order[:k]]

    def to_xarray(self):
        """Grids only: an ``xarray.Dataset`` with ``features (region_y, region_x, feature)`` and the boxes/bounds as coords."""
        import xarray as xr

        if self.kind != "grid":
            raise ValueError("to_xarray is for grid regions; sensor features are written as a table (to_frame)")
        ny, nx, d = self.values.shape
        coords: dict[str, Any] = {
            "region_y": np.arange(ny), "region_x": np.arange(nx), "feature": np.arange(d),
            "y0": ("region_y", self.boxes[:, 0, 0]), "y1": ("region_y", self.boxes[:, 0, 1]),
            "x0": ("region_x", self.boxes[0, :, 2]), "x1": ("region_x", self.boxes[0, :, 3]),
        }
        if self.lat_bounds is not None:
            coords["lat_min"] = ("region_y", self.lat_bounds[:, 0])
            coords["lat_max"] = ("region_y", self.lat_bounds[:, 1])
        if self.lon_bounds is not None:
            coords["lon_min"] = ("region_x", self.lon_bounds[:, 0])
            coords["lon_max"] = ("region_x", self.lon_bounds[:, 1])
        attrs = {"windows": int(self.windows), **{k: str(v) for k, v in self.attrs.items()}}
        return xr.Dataset({"features": (("region_y", "region_x", "feature"), self.values.astype(np.float32))},
                          coords=coords, attrs=attrs)

    def to_frame(self):
        """Sensors only: a ``pandas.DataFrame``, one row per sensor: ``sensor``, ``lat``, ``lon``, ``f0`` ... ``f{D-1}``."""
        import pandas as pd

        if self.kind != "sensor":
            raise ValueError("to_frame is for sensor features; grid features are written as NetCDF (to_xarray)")
        frame = pd.DataFrame(self.values, columns=[f"f{i}" for i in range(self.values.shape[1])])
        if self.coords is not None:
            frame.insert(0, "lon", self.coords[:, 1])
            frame.insert(0, "lat", self.coords[:, 0])
        frame.insert(0, "sensor", np.arange(len(frame)))
        return frame

    def save(self, path: str | Path) -> Path:
        """Write atomically: grids as NetCDF (``.nc``), sensors as CSV (``.csv``) or Parquet (``.parquet``)."""
        from stpatch.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            if self.kind == "grid":
                self.to_xarray().to_netcdf(tmp)
            elif path.suffix == ".parquet":
                self.to_frame().to_parquet(tmp, index=False)
            else:
                self.to_frame().to_csv(tmp, index=False)
        return path


def load_features(path: str | Path) -> RegionFeatures:
    """Read back what :meth:`RegionFeatures.save` wrote."""
    path = Path(path)
    if path.suffix == ".nc":
        import xarray as xr

        with xr.open_dataset(path) as ds:
            ds = ds.load()
        boxes = np.stack(np.broadcast_arrays(ds.y0.values[:, None], ds.y1.values[:, None],
                                             ds.x0.values[None, :], ds.x1.values[None, :]), -1)
        lat = np.stack([ds.lat_min.values, ds.lat_max.values], 1) if "lat_min" in ds.coords else None
        lon = np.stack([ds.lon_min.values, ds.lon_max.values], 1) if "lon_min" in ds.coords else None
        return RegionFeatures(ds.features.values, "grid", boxes, lat, lon, windows=int(ds.attrs.get("windows", 0)))
    import pandas as pd

    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    cols = [c for c in frame.columns if c.startswith("f") and c[1:].isdigit()]
    coords = frame[["lat", "lon"]].to_numpy() if {"lat", "lon"} <= set(frame.columns) else None
    return RegionFeatures(frame[cols].to_numpy(np.float32), "sensor", coords=coords)


# --------------------------------------------------------------------------- extraction


@contextlib.contextmanager
def _recording(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record, per forecaster call, region features: grids ``(B, nT, nY, nX, D)``, sensors ``(B, N, D)``.

    Of an ensemble (``model.members``), the first member's: each member has its own feature space.
    """
    out: list[torch.Tensor] = []
    head = next((m for m in model.modules() if isinstance(m, PatchHead)), None)
    grid = None if head is not None else next((m for m in model.modules() if hasattr(m, "forward_features")), None)
    if head is not None:
        # what the patch head turns into each patch's forecast: one vector per spatial patch of the
        # input, as a sensor's is the vector its output MLP reads (on the ERA5 benchmark run these tell
        # land from sea better than the coarser grid after the attention: 0.79 vs 0.56, README.md)
        handle = head.register_forward_pre_hook(lambda module, args: out.append(args[0]))
    elif grid is not None:
        def hook(module, args, kwargs):
            # the grid forecaster's own input (after any base forecast was prepended), so the features
            # are those of the forecast being made
            out.append(module.forward_features(args[0], kwargs.get("tod", args[1] if len(args) > 1 else None)))
        handle = grid.register_forward_pre_hook(hook, with_kwargs=True)
    else:
        sensor = next((m for m in model.modules() if hasattr(m, "node_embed") and hasattr(m, "groups")), None)
        if sensor is None:
            raise ValueError(f"{type(model).__name__} exposes no region features (grids need a patch head or forward_features, "
                             "sensors stpnet_sensor); use an stpnet model")
        # the per-sensor vector the output MLP reads
        handle = sensor.out.register_forward_pre_hook(lambda module, args: out.append(args[0]))
    try:
        yield out
    finally:
        handle.remove()


@torch.no_grad()
def region_features_of(module: nn.Module, batches, kind: str) -> tuple[np.ndarray, int]:
    """Features ``(nY, nX, D)`` or ``(N, D)`` of ``module`` (a ForecastModule) averaged over ``batches``; and the window count."""
    total, windows = None, 0
    with _recording(module.model) as seen:
        for batch in batches:
            seen.clear()
            module(batch)
            f = seen[-1].double()
            pooled = f.mean(1) if kind == "grid" else f  # time tokens
            s = pooled.sum(0)
            total = s if total is None else total + s
            windows += f.shape[0]
    if total is None:
        raise ValueError("no input windows to pool features over")
    return (total / windows).float().numpy(), windows


def _bounds(values: np.ndarray, size: int, n: int) -> np.ndarray:
    step = math.ceil(size / n)
    edges = [(i * step, min((i + 1) * step, size)) for i in range(n)]
    return np.array([(values[a:b].min(), values[a:b].max()) if a < b else (np.nan, np.nan) for a, b in edges])


def features(run_or_checkpoint: Any, data: Any = None, split: str = "test", limit_batches: int | None = None) -> RegionFeatures:
    """Region features of a trained run, pooled over the input windows of ``split``.

    Args:
        run_or_checkpoint: a run directory, a checkpoint file or a loaded run.
        data: a ``SpatioTemporalData`` in place of the run's data set (its ``split`` is used).
        split: ``"test"`` (default), ``"val"``, ``"train"`` or ``"all"`` (every window, e.g. of a user's ``data``).
        limit_batches: pool at most this many batches.

    Returns:
        :class:`RegionFeatures`: grids ``(nY, nX, D)`` with pixel boxes and lat/lon bounds where known,
        sensors ``(N, D)`` with their coordinates.
    """
    run = as_run(run_or_checkpoint)
    dm = run_data(run, data, split)
    values, windows = region_features_of(run.module, run_batches(dm, split, limit_batches), run.meta["kind"])
    return with_geometry(values, windows, run, dm, split)


def with_geometry(values: np.ndarray, windows: int, run, dm=None, split: str = "test") -> RegionFeatures:
    """:class:`RegionFeatures` of pooled ``values`` (``(nY, nX, D)`` or ``(N, D)``) with the run's pixel boxes and coordinates."""
    where = spatial_coords(run, dm)
    attrs = {"checkpoint": str(run.checkpoint), "split": split}
    if run.meta["kind"] == "sensor":
        return RegionFeatures(values, "sensor", coords=where.get("coords"), windows=windows, attrs=attrs)
    h, w = run.meta["spatial_shape"]
    ny, nx = values.shape[:2]
    sy, sx = math.ceil(h / ny), math.ceil(w / nx)
    ys = np.array([(i * sy, min((i + 1) * sy, h)) for i in range(ny)])
    xs = np.array([(j * sx, min((j + 1) * sx, w)) for j in range(nx)])
    boxes = np.concatenate(np.broadcast_arrays(ys[:, None], xs[None, :]), -1)  # (nY, nX, 4)
    lat = _bounds(where["lat"], h, ny) if "lat" in where and len(where["lat"]) == h else None
    lon = _bounds(where["lon"], w, nx) if "lon" in where and len(where["lon"]) == w else None
    return RegionFeatures(values, "grid", boxes, lat, lon, windows=windows, attrs=attrs)
