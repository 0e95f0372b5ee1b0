"""NetCDF / Zarr / GRIB files and xarray objects -> ``SpatioTemporalData``; forecasts -> NetCDF.

:func:`from_xarray` reads lazily: dask chunks along time, and a window computes only the chunks it
touches; a file's variables are read through :class:`~.store.StoreVariable`, so every process (each
DataLoader worker) opens the file itself.  :func:`write_netcdf` is the format table's NetCDF writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core import SpatioTemporalData
from .store import lazy_variable

if TYPE_CHECKING:
    from .formats import Forecast

__all__ = ["open_xarray", "from_xarray", "write_netcdf", "NETCDF_SUFFIXES", "GRIB_SUFFIXES"]

GRIB_SUFFIXES = (".grib", ".grb", ".grib2", ".grb2", ".grib1")
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")
#: Names of latitude / longitude dimensions and columns (also used by the sensor tables).
LAT_NAMES = ("latitude", "lat", "nav_lat", "rlat")
LON_NAMES = ("longitude", "lon", "lng", "nav_lon", "rlon")


def reads_as_zarr(path: str | Path, engine: str | None = None) -> bool:
    """Whether :func:`open_xarray` opens ``path`` as a Zarr store (``engine="zarr"``, a ``.zarr`` name, or
    a folder when no engine is given)."""
    path = Path(path)
    return engine == "zarr" or path.suffix.lower() == ".zarr" or (path.is_dir() and engine is None)


def open_xarray(path, engine: str | None = None):
    """Open a NetCDF / Zarr / GRIB file lazily (no values are read); errors name the file."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    suffix = "".join(path.suffixes[-1:]).lower()
    try:
        if reads_as_zarr(path, engine):
            return xr.open_zarr(path, chunks=None)
        if engine == "cfgrib" or suffix in GRIB_SUFFIXES:
            try:
                import cfgrib  # noqa: F401
            except ImportError as e:
                raise ImportError(
                    f"{path}: reading GRIB needs cfgrib and eccodes (pip install 'stpatch[grib]')"
                ) from e
            # indexpath="" : do not write a .idx file next to (possibly read-only) data
            return xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
        return xr.open_dataset(path, engine=engine)
    except (ImportError, FileNotFoundError):
        raise
    except Exception as e:  # noqa: BLE001 - backends raise many kinds for bad files
        what = "GRIB" if suffix in GRIB_SUFFIXES else "Zarr" if suffix == ".zarr" else "NetCDF"
        raise ValueError(f"{path}: cannot open as {what} ({type(e).__name__}: {e})") from e


def _in_memory(var) -> bool:
    return bool(getattr(var.variable, "_in_memory", False))


def _as_dataset(dataset_or_path, engine):
    import xarray as xr

    if isinstance(dataset_or_path, str | Path):
        return open_xarray(dataset_or_path, engine=engine)
    if isinstance(dataset_or_path, xr.DataArray):
        return dataset_or_path.to_dataset(name=dataset_or_path.name or "value")
    if isinstance(dataset_or_path, xr.Dataset):
        return dataset_or_path
    raise TypeError(
        f"from_xarray expects a path or an xarray Dataset/DataArray, got {type(dataset_or_path).__name__}"
    )


def _channel_arrays(ds, variables, need, time, chunks, src, path=None, engine=None):
    """One ``(..., _channel)`` DataArray per variable (extra dims folded into channels), and labels.

    Variables of a file (``path``) become dask arrays over a :class:`~.store.StoreVariable`, which each
    process (a DataLoader worker too) opens for itself."""
    arrays, channels = [], []
    for v in variables:
        if v not in ds.data_vars:
            raise ValueError(f"{src}: variable {v!r} not found; the file has {list(ds.data_vars)}")
        da = ds[v]
        missing = [d for d in need if d not in da.dims]
        if missing:
            raise ValueError(
                f"{src}: variable {v!r} has dimensions {tuple(da.dims)}, expected {need} "
                f"(missing {missing}); pass time=... / space=(...) to match"
            )
        if chunks is not None and da.chunks is None and not _in_memory(da):
            # lazily indexed: dask chunks along time; a window reads only the stored chunks it overlaps
            da = lazy_variable(da, path, engine, time, int(chunks)) if path else da.chunk({time: int(chunks)})
        extra = [d for d in da.dims if d not in need]
        if extra:
            da = da.stack(_channel=extra)
            labels = [
                f"{v}["
                + ",".join(
                    f"{d}={x}" for d, x in zip(extra, key if isinstance(key, tuple) else (key,), strict=True)
                )
                + "]"
                for key in da["_channel"].values
            ]
            da = da.drop_vars([c for c in da.coords if "_channel" in da[c].dims])
        else:
            da = da.expand_dims("_channel")
            labels = [str(v)]
        arrays.append(da)
        channels += labels
    return arrays, channels


def _space_coords(ds, kind, space):
    """Grid: ``{"lat", "lon"}`` (or ``{"y", "x"}``) 1-D coordinates; sensors: ``(N, 2)`` lat/lon."""
    if kind == "grid":
        ry, rx = space
        yv = ds[ry].values if ry in ds.variables else None
        xv = ds[rx].values if rx in ds.variables else None
        if yv is not None and xv is not None and yv.ndim == 1 and xv.ndim == 1:
            if ry.lower() in LAT_NAMES and rx.lower() in LON_NAMES:
                return {"lat": yv.astype(float), "lon": xv.astype(float)}
            return {"y": yv, "x": xv}
        return None
    on_sensors = [c for c in ds.variables if ds[c].dims == (space[0],)]
    lat = next((ds[c].values for c in on_sensors if c.lower() in LAT_NAMES), None)
    lon = next((ds[c].values for c in on_sensors if c.lower() in LON_NAMES), None)
    if lat is not None and lon is not None:
        return np.stack([lat, lon], axis=1).astype(float)
    return None


def from_xarray(
    dataset_or_path,
    variables=None,
    time: str = "time",
    space=("latitude", "longitude"),
    chunks: int | None = 24,
    engine: str | None = None,
    null_value: float | None = None,
    name: str | None = None,
) -> SpatioTemporalData:
    """A NetCDF / Zarr / GRIB file (or xarray Dataset / DataArray) as ``SpatioTemporalData``.

    Parameters
    ----------
    dataset_or_path: path (``.nc``, ``.zarr``, ``.grib``...) or an xarray object.
    variables: names of the data variables that become channels (default: every variable that
        has the time and space dimensions).  Extra dimensions (e.g. ``level``) are folded into
        channels named ``"var[level=850]"``.
    time: name of the time dimension.
    space: two dimension names for a grid ``(rows, columns)`` (e.g. latitude, longitude), or one
        name for a sensor network (e.g. ``("station",)``).
    chunks: time steps per dask chunk (best a multiple of a Zarr / NetCDF file's stored chunks); data
        not already in memory stay lazy, a window reads only the stored chunks it overlaps, and the
        passes over a split (scaler, data profile) stream it chunk by chunk, so a file larger than
        memory trains. A file's variables are read through :class:`~.store.StoreVariable`, which every
        process (each DataLoader worker too) opens for itself. None loads everything into memory.

    Returns
    -------
    grid ``(T, C, H, W)`` or sensor ``(T, N, C)`` data with times (when the time coordinate is a
    datetime), ``coords`` (lat/lon when the space dims look like them), attrs ``source_file``,
    ``variables``, ``time_dim``, ``space_dims``, ``step``.
    """
    import xarray as xr

    src = str(dataset_or_path) if isinstance(dataset_or_path, str | Path) else "dataset"
    ds = _as_dataset(dataset_or_path, engine)
    space = (space,) if isinstance(space, str) else tuple(space)
    if len(space) not in (1, 2):
        raise ValueError(f"{src}: space should name 2 grid dims (rows, cols) or 1 sensor dim, got {space}")
    need = (time, *space)
    if variables is None:
        variables = [v for v in ds.data_vars if all(d in ds[v].dims for d in need)]
        if not variables:
            found = {v: tuple(ds[v].dims) for v in ds.data_vars}
            raise ValueError(
                f"{src}: no variable has the dimensions {need}; found {found or 'no data variables'}. "
                f"Pass time=... and space=(...) with the names used in the file"
            )
    elif isinstance(variables, str):
        variables = [variables]
    path = dataset_or_path if isinstance(dataset_or_path, str | Path) else None
    arrays, channels = _channel_arrays(ds, variables, need, time, chunks, src, path, engine)
    stacked = (
        xr.concat(arrays, dim="_channel", coords="minimal", compat="override")
        if len(arrays) > 1
        else arrays[0]
    )
    kind = "grid" if len(space) == 2 else "sensor"
    order = (time, "_channel", *space) if kind == "grid" else (time, space[0], "_channel")
    stacked = stacked.transpose(*order)
    data = np.asarray(stacked.values) if chunks is None else stacked.data  # dask when lazy
    tvals = ds[time].values if time in ds.coords or time in ds.variables else None
    times = tvals if tvals is not None and np.issubdtype(tvals.dtype, np.datetime64) else None
    step = None
    if times is not None and len(times) > 1:
        step = np.median(np.diff(times))
    attrs = {
        "source_file": src if src != "dataset" else None,
        "variables": list(variables),
        "time_dim": time,
        "space_dims": list(space),
        "step": step,
        "var_attrs": {v: dict(ds[v].attrs) for v in variables},
    }
    if kind == "sensor":
        attrs["sensor_ids"] = [str(s) for s in ds[space[0]].values] if space[0] in ds.variables else None
    return SpatioTemporalData(
        kind=kind,
        segments=[data],
        times=None if times is None else [times],
        channels=channels,
        coords=_space_coords(ds, kind, space),
        null_value=null_value,
        name=name or (Path(src).stem if src != "dataset" else "dataset"),
        attrs=attrs,
    )



def _grid_space(like, tcoord: dict) -> list[str]:
    """The grid's space dims (from the input when known), adding their coordinates to ``tcoord``."""
    space = ["y", "x"]
    if like is not None and like.attrs.get("space_dims"):
        space = list(like.attrs["space_dims"])
    elif like is not None and isinstance(like.coords, dict) and "lat" in like.coords:
        space = ["latitude", "longitude"]
    if like is not None and isinstance(like.coords, dict):
        ry, rx = ("lat", "lon") if "lat" in like.coords else ("y", "x")
        if ry in like.coords and rx in like.coords:
            tcoord[space[0]] = like.coords[ry]
            tcoord[space[1]] = like.coords[rx]
    return space


def write_netcdf(tmp: Path, forecast: Forecast) -> None:
    """One variable per channel with dims ``(time, <space dims>)``; a batch adds a leading ``sample``
    dim and uses ``lead_time`` instead of ``time``."""
    import xarray as xr

    arr, like, step = forecast.array, forecast.like, forecast.step
    T = forecast.steps
    lead = ("sample", "lead_time") if forecast.batched else ("time",)
    tcoord = {}
    if forecast.batched and step is not None:
        tcoord["lead_time"] = (np.arange(1, T + 1) * step).astype("timedelta64[ns]")
    elif not forecast.batched and forecast.times is not None:
        tcoord["time"] = forecast.times
    if forecast.kind == "grid":
        dims = (*lead, *_grid_space(like, tcoord))
        data_vars = {ch: (dims, np.take(arr, i, axis=-3)) for i, ch in enumerate(forecast.channels)}
    else:
        sdim = (like.attrs.get("space_dims") or ["sensor"])[0] if like is not None else "sensor"
        ids = like.attrs.get("sensor_ids") if like is not None else None
        if ids is not None:
            tcoord[sdim] = np.asarray(ids)
        dims = (*lead, sdim)
        data_vars = {ch: (dims, arr[..., i]) for i, ch in enumerate(forecast.channels)}
    var_attrs = (like.attrs.get("var_attrs") or {}) if like is not None else {}
    ds = xr.Dataset(data_vars, coords=tcoord, attrs={"title": "stpatch forecast"})
    for ch in forecast.channels:
        if ch in var_attrs:
            ds[ch].attrs.update({k: v for k, v in var_attrs[ch].items() if isinstance(v, str | int | float)})
    ds.to_netcdf(tmp)
