"""Adapters: the user's own arrays, NetCDF/Zarr/GRIB, CSV tables and videos -> SpatioTemporalData.

Everything is converted to the canonical layouts once, here at the edge:
grids ``(T, C, H, W)`` and sensor networks ``(T, N, C)``.

* :func:`from_numpy` - arrays in any common layout (views, no copies).
* :func:`from_xarray` - NetCDF / Zarr / GRIB files or xarray objects, lazily: dask chunks along
  time, and a window computes only the chunks it touches.
* :func:`from_csv` - sensor tables, wide (one column per sensor) or long (time, sensor, value).
* :func:`from_video` - video files and animated GIFs (imageio v3) as float frames in [0, 1].
* :func:`read_array_file` / :func:`write_forecast` - the input and output of ``stpatch predict``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import SpatioTemporalData, to_numpy

__all__ = [
    "from_numpy",
    "from_xarray",
    "from_csv",
    "from_video",
    "read_array_file",
    "write_forecast",
    "LAYOUTS",
]

#: Layouts :func:`from_numpy` accepts: T time, C channel, H/W grid rows/columns, N sensors,
#: B a batch of independent sequences (one segment each).
LAYOUTS = ("TCHW", "THWC", "THW", "TNC", "TN", "BTCHW", "BTHWC", "BTHW", "BTNC", "BTN")


# ============================================================================ numpy
def _canonical(a, layout: str, who: str):
    """View of ``a`` (layout without B) in canonical layout, and the kind."""
    if a.ndim != len(layout):
        raise ValueError(f"{who}: layout {layout!r} expects {len(layout)} dims, found shape {tuple(a.shape)}")
    if layout == "TCHW":
        return a, "grid"
    if layout == "THWC":
        return np.moveaxis(a, -1, 1) if isinstance(a, np.ndarray) else a.transpose(0, 3, 1, 2), "grid"
    if layout == "THW":
        return a[:, None], "grid"
    if layout == "TNC":
        return a, "sensor"
    if layout == "TN":
        return a[:, :, None], "sensor"
    raise ValueError(f"{who}: unknown layout {layout!r}; expected one of {LAYOUTS}")


def from_numpy(
    array,
    layout: str = "TCHW",
    times=None,
    mask=None,
    null_value: float | None = None,
    channels=None,
    coords=None,
    adjacency=None,
    name: str = "array",
    attrs: dict | None = None,
) -> SpatioTemporalData:
    """Wrap arrays as ``SpatioTemporalData`` without copying.

    Parameters
    ----------
    array: numpy (or dask, or torch) array in ``layout``, or a list of such arrays (segments).
    layout: one of :data:`LAYOUTS`. ``"BT..."`` layouts make one segment per sequence.
    times: datetime64-like ``(T,)`` (shared by all sequences of a batch), ``(B, T)``, or a list
        per segment.
    mask: bool, same shape as ``array`` (True = observed).
    null_value: a value that means missing (e.g. 0 for traffic speeds).
    channels, coords, adjacency: see :class:`~stpatch.data.core.SpatioTemporalData`.

    >>> d = from_numpy(np.zeros((30, 8, 8)), layout="THW")
    >>> d.segments[0].shape
    (30, 1, 8, 8)
    """
    layout = layout.upper()
    if layout not in LAYOUTS:
        raise ValueError(f"{name}: unknown layout {layout!r}; expected one of {LAYOUTS}")
    if type(array).__module__.startswith("torch"):
        array = to_numpy(array)
    if mask is not None and type(mask).__module__.startswith("torch"):
        mask = to_numpy(mask)
    arrays = list(array) if isinstance(array, list | tuple) else None
    masks = list(mask) if isinstance(mask, list | tuple) else None
    base = layout[1:] if layout.startswith("B") else layout
    if arrays is None:
        if not hasattr(array, "ndim"):
            array = np.asarray(array)
        if array.ndim != len(layout):
            raise ValueError(
                f"{name}: layout {layout!r} expects {len(layout)} dims, found shape {tuple(array.shape)}"
            )
        if layout.startswith("B"):
            arrays = [array[b] for b in range(array.shape[0])]
            if mask is not None:
                mask = np.asarray(mask)
                if mask.shape != tuple(array.shape):
                    raise ValueError(
                        f"{name}: mask shape {mask.shape} differs from data shape {tuple(array.shape)}"
                    )
                masks = [mask[b] for b in range(mask.shape[0])]
        else:
            arrays = [array]
            masks = None if mask is None else [np.asarray(mask)]
    segs, kind = [], None
    for i, a in enumerate(arrays):
        if not hasattr(a, "ndim"):
            a = np.asarray(a)
        seg, kind = _canonical(a, base, f"{name} segment {i}")
        segs.append(seg)
    if masks is not None:
        if len(masks) != len(segs):
            raise ValueError(f"{name}: {len(segs)} segments but {len(masks)} masks")
        cm = []
        for i, m in enumerate(masks):
            m = np.asarray(m, dtype=bool)
            if m.shape != tuple(arrays[i].shape):
                raise ValueError(
                    f"{name}: mask {i} shape {m.shape} differs from data shape {tuple(arrays[i].shape)}"
                )
            cm.append(_canonical(m, base, name)[0])
        masks = cm
    if times is not None:
        if isinstance(times, list | tuple) and len(times) == len(segs) and len(segs) > 1:
            times = list(times)
        else:
            t = np.asarray(times)
            if t.ndim == 2:
                times = [t[b] for b in range(t.shape[0])]
            elif len(segs) > 1:
                times = [t] * len(segs)
            else:
                times = [t]
    return SpatioTemporalData(
        kind=kind,
        segments=segs,
        times=times,
        mask=masks,
        channels=channels,
        coords=coords,
        adjacency=adjacency,
        null_value=null_value,
        name=name,
        attrs=dict(attrs or {}),
    )


# ============================================================================ xarray
_GRIB = (".grib", ".grb", ".grib2", ".grb2", ".grib1")
_NETCDF = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")
_LAT = ("latitude", "lat", "nav_lat", "rlat")
_LON = ("longitude", "lon", "lng", "nav_lon", "rlon")


def open_xarray(path, engine: str | None = None):
    """Open a NetCDF / Zarr / GRIB file lazily (no values are read); errors name the file."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    suffix = "".join(path.suffixes[-1:]).lower()
    try:
        if engine == "zarr" or suffix == ".zarr" or (path.is_dir() and engine is None):
            return xr.open_zarr(path, chunks=None)
        if engine == "cfgrib" or suffix in _GRIB:
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
        raise ValueError(
            f"{path}: cannot open as {'GRIB' if suffix in _GRIB else 'Zarr' if suffix == '.zarr' else 'NetCDF'} "
            f"({type(e).__name__}: {e})"
        ) from e


def _in_memory(var) -> bool:
    return bool(getattr(var.variable, "_in_memory", False))


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
    chunks: time steps per dask chunk; data not already in memory stay lazy and a window only
        reads the chunks it overlaps.  None loads everything into memory.

    Returns
    -------
    grid ``(T, C, H, W)`` or sensor ``(T, N, C)`` data with times (when the time coordinate is a
    datetime), ``coords`` (lat/lon when the space dims look like them), attrs ``source_file``,
    ``variables``, ``time_dim``, ``space_dims``, ``step``.
    """
    import xarray as xr

    src = str(dataset_or_path) if isinstance(dataset_or_path, str | Path) else "dataset"
    if isinstance(dataset_or_path, str | Path):
        ds = open_xarray(dataset_or_path, engine=engine)
    elif isinstance(dataset_or_path, xr.DataArray):
        ds = dataset_or_path.to_dataset(name=dataset_or_path.name or "value")
    elif isinstance(dataset_or_path, xr.Dataset):
        ds = dataset_or_path
    else:
        raise TypeError(
            f"from_xarray expects a path or an xarray Dataset/DataArray, got {type(dataset_or_path).__name__}"
        )
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
            # lazily indexed file: dask chunks along time, each reading only its slice
            da = da.chunk({time: int(chunks)})
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
    coords = None
    if kind == "grid":
        ry, rx = space
        yv = ds[ry].values if ry in ds.variables else None
        xv = ds[rx].values if rx in ds.variables else None
        if yv is not None and xv is not None and yv.ndim == 1 and xv.ndim == 1:
            if ry.lower() in _LAT and rx.lower() in _LON:
                coords = {"lat": yv.astype(float), "lon": xv.astype(float)}
            else:
                coords = {"y": yv, "x": xv}
    else:
        lat = next(
            (ds[c].values for c in ds.variables if c.lower() in _LAT and ds[c].dims == (space[0],)), None
        )
        lon = next(
            (ds[c].values for c in ds.variables if c.lower() in _LON and ds[c].dims == (space[0],)), None
        )
        if lat is not None and lon is not None:
            coords = np.stack([lat, lon], axis=1).astype(float)
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
        coords=coords,
        null_value=null_value,
        name=name or (Path(src).stem if src != "dataset" else "dataset"),
        attrs=attrs,
    )


# ============================================================================ CSV
_TIME_NAMES = ("time", "timestamp", "date", "datetime", "date_time")
_INDEX_NAMES = ("step", "lead_time", "unnamed: 0")
_ID_NAMES = ("sensor_id", "sensor", "id", "station", "station_id", "node", "node_id", "name")


def _read_table(path, who: str, **kw):
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{who}: no such file: {path}")
    try:
        return pd.read_csv(path, **kw)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read as CSV ({type(e).__name__}: {e})") from e


def _pick(cols, names):
    low = {str(c).lower(): c for c in cols}
    return next((low[n] for n in names if n in low), None)


def read_coords(coords, sensor_ids=None, who: str = "coords") -> np.ndarray:
    """Sensor coordinates ``(N, 2)`` (latitude, longitude) from a CSV path, DataFrame or array.

    With an id column (``sensor_id``, ``id``, ``station`` ...) and ``sensor_ids``, rows are put in
    the order of ``sensor_ids``; a sensor without coordinates is an error naming it.
    """
    import pandas as pd

    src = str(coords) if isinstance(coords, str | Path) else who
    if isinstance(coords, str | Path):
        coords = _read_table(coords, who)
    if isinstance(coords, pd.DataFrame):
        lat, lon = _pick(coords.columns, _LAT), _pick(coords.columns, _LON)
        if lat is None or lon is None:
            raise ValueError(f"{src}: expected latitude and longitude columns, found {list(coords.columns)}")
        idc = _pick(coords.columns, _ID_NAMES)
        if idc is not None and sensor_ids is not None:
            table = coords.assign(_id=coords[idc].astype(str)).drop_duplicates("_id").set_index("_id")
            missing = [s for s in sensor_ids if s not in table.index]
            if missing:
                raise ValueError(
                    f"{src}: no coordinates for {len(missing)} of {len(sensor_ids)} sensors, e.g. {missing[:5]} "
                    f"(column {idc!r} holds ids like {list(table.index[:3])})"
                )
            table = table.loc[list(sensor_ids)]
            return table[[lat, lon]].to_numpy(dtype=float)
        arr = coords[[lat, lon]].to_numpy(dtype=float)
    else:
        arr = np.asarray(coords, dtype=float)
    if sensor_ids is not None and arr.shape != (len(sensor_ids), 2):
        raise ValueError(
            f"{src}: expected ({len(sensor_ids)}, 2) latitude/longitude for {len(sensor_ids)} sensors, found {arr.shape}"
        )
    return arr


def read_adjacency(adjacency, n: int | None = None, who: str = "adjacency") -> np.ndarray:
    """An ``(N, N)`` adjacency matrix from a CSV (with or without header) path, DataFrame or array."""
    import pandas as pd

    src = str(adjacency) if isinstance(adjacency, str | Path) else who
    if isinstance(adjacency, str | Path):
        df = _read_table(adjacency, who, header=None)
        try:
            arr = df.to_numpy(dtype=float)
        except (ValueError, TypeError):
            df = _read_table(adjacency, who, index_col=0)
            try:
                arr = df.to_numpy(dtype=float)
            except (ValueError, TypeError) as e:
                raise ValueError(f"{src}: expected a numeric (N, N) matrix ({e})") from e
    elif isinstance(adjacency, pd.DataFrame):
        arr = adjacency.to_numpy(dtype=float)
    else:
        arr = np.asarray(adjacency, dtype=float)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or (n is not None and arr.shape[0] != n):
        want = f"({n}, {n})" if n is not None else "(N, N)"
        raise ValueError(
            f"{src}: expected an adjacency matrix of shape {want}"
            + (f" for {n} sensors" if n else "")
            + f", found {arr.shape}"
        )
    return arr


def from_csv(
    path,
    layout: str = "wide",
    time_col: str | None = None,
    sensor_col: str = "sensor",
    value_col="value",
    coords=None,
    adjacency=None,
    null_value: float | None = None,
    name: str | None = None,
    **read_csv_kwargs,
) -> SpatioTemporalData:
    """A sensor table as ``SpatioTemporalData`` of kind ``"sensor"``, ``(T, N, C)``.

    Parameters
    ----------
    path: CSV file.
    layout: ``"wide"`` (one row per time, one column per sensor; an optional time column) or
        ``"long"`` (one row per (time, sensor) with value column(s); absent pairs become NaN).
    time_col: the time column (wide: optional, found automatically when named time/timestamp/
        date/datetime; long: default ``"time"``).
    sensor_col, value_col: columns of the long layout; ``value_col`` may be a list (channels).
    coords: CSV path / DataFrame / array of sensor latitude, longitude (matched by id when the
        table has an id column).
    adjacency: CSV path / DataFrame / array ``(N, N)``.
    null_value: value meaning "missing" (e.g. 0 for traffic speeds); becomes ``mask == False``.
    """
    import pandas as pd

    path = Path(path)
    who = name or path.stem
    df = _read_table(path, who, **read_csv_kwargs)
    if df.empty:
        raise ValueError(f"{path}: the CSV has no rows")
    if layout == "wide":
        tc = time_col if time_col is not None else _pick(df.columns, _TIME_NAMES)
        if tc is not None and tc not in df.columns:
            raise ValueError(f"{path}: time column {tc!r} not found; columns are {list(df.columns)[:10]}")
        value_cols = [c for c in df.columns if c != tc and str(c).lower() not in _INDEX_NAMES]
        values = df[value_cols]
        bad = [c for c in value_cols if not pd.api.types.is_numeric_dtype(values[c])]
        if bad:
            raise ValueError(
                f"{path}: wide layout expects numeric sensor columns, but {bad[:5]} are not numeric "
                "(name the time column with time_col=..., or use layout='long')"
            )
        arr = values.to_numpy(dtype=np.float32)[:, :, None]
        sensor_ids = [str(c) for c in value_cols]
        channels = ["value"]
        times = None
        if tc is not None:
            times = _parse_times(df[tc], path, tc)
    elif layout == "long":
        tc = time_col or "time"
        vcols = [value_col] if isinstance(value_col, str) else list(value_col)
        for c in (tc, sensor_col, *vcols):
            if c not in df.columns:
                raise ValueError(
                    f"{path}: long layout expects columns time_col={tc!r}, sensor_col={sensor_col!r}, "
                    f"value_col={vcols}; column {c!r} not found in {list(df.columns)}"
                )
        t = _parse_times(df[tc], path, tc)
        t_codes, t_uniq = pd.factorize(pd.Series(t), sort=True)
        s_codes, s_uniq = pd.factorize(df[sensor_col].astype(str), sort=False)
        arr = np.full((len(t_uniq), len(s_uniq), len(vcols)), np.nan, dtype=np.float32)
        arr[t_codes, s_codes, :] = df[vcols].to_numpy(dtype=np.float32)
        times = np.asarray(t_uniq, dtype="datetime64[ns]")
        sensor_ids = [str(s) for s in s_uniq]
        channels = [str(c) for c in vcols]
    else:
        raise ValueError(f"{path}: layout should be 'wide' or 'long', got {layout!r}")
    attrs = {"source_file": str(path), "sensor_ids": sensor_ids}
    c = a = None
    if coords is not None:
        attrs["coords_file"] = str(coords) if isinstance(coords, str | Path) else "coords"
        c = read_coords(coords, sensor_ids, who)
    if adjacency is not None:
        attrs["adjacency_file"] = str(adjacency) if isinstance(adjacency, str | Path) else "adjacency"
        a = read_adjacency(adjacency, len(sensor_ids), who)
    if times is not None and len(times) > 1:
        attrs["step"] = np.median(np.diff(times))
    return SpatioTemporalData(
        kind="sensor",
        segments=[arr],
        times=None if times is None else [times],
        channels=channels,
        coords=c,
        adjacency=a,
        null_value=null_value,
        name=who,
        attrs=attrs,
    )


def _parse_times(col, path, name) -> np.ndarray:
    import pandas as pd

    try:
        return pd.to_datetime(col).to_numpy(dtype="datetime64[ns]")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: column {name!r} cannot be read as dates ({e})") from e


# ============================================================================ video
_VIDEO = (".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".apng", ".png")


def from_video(
    path, grayscale="auto", max_frames: int | None = None, name: str | None = None
) -> SpatioTemporalData:
    """A video file or animated GIF as a grid ``(T, C, H, W)`` float32 in [0, 1].

    ``grayscale="auto"`` keeps one channel when all colour channels are equal (GIFs store grey
    frames as RGB); ``True`` averages colours to one channel; ``False`` keeps RGB.  A constant
    alpha channel is dropped.  ``attrs["fps"]`` holds the frame rate when the file states it.
    """
    import imageio.v3 as iio

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such video file: {path}")
    try:
        frames = iio.imread(path, index=None)
        props = iio.improps(path, index=None)
    except Exception as e:  # noqa: BLE001 - plugins raise many kinds
        hint = ""
        if path.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv", ".webm"):
            hint = "; reading this format needs a video plugin: pip install av (or imageio-ffmpeg)"
        raise ValueError(f"{path}: cannot read as video ({type(e).__name__}: {e}){hint}") from e
    frames = np.asarray(frames)
    if not getattr(props, "is_batch", True):
        frames = frames[None]
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4:
        raise ValueError(f"{path}: expected frames (T, H, W[, C]), found shape {frames.shape}")
    if max_frames is not None:
        frames = frames[: int(max_frames)]
    if frames.shape[-1] in (2, 4):
        alpha = frames[..., -1]
        if np.all(alpha == alpha.flat[0]):
            frames = frames[..., :-1]
    if np.issubdtype(frames.dtype, np.integer):
        scale = float(np.iinfo(frames.dtype).max)
        x = frames.astype(np.float32) / scale
    else:
        x = np.clip(frames.astype(np.float32), 0.0, 1.0)
    c = x.shape[-1]
    if c > 1 and (
        grayscale is True
        or (grayscale == "auto" and all(np.array_equal(x[..., 0], x[..., k]) for k in range(1, c)))
    ):
        x = x.mean(-1, keepdims=True) if grayscale is True else x[..., :1]
    channels = ["gray"] if x.shape[-1] == 1 else ["red", "green", "blue", "alpha"][: x.shape[-1]]
    fps = None
    try:
        meta = iio.immeta(path)
        if meta.get("fps"):
            fps = float(meta["fps"])
        elif meta.get("duration"):
            fps = 1000.0 / float(meta["duration"])
    except Exception:  # noqa: BLE001 - metadata is optional
        pass
    return SpatioTemporalData(
        kind="grid",
        segments=[np.ascontiguousarray(np.moveaxis(x, -1, 1))],
        channels=channels,
        name=name or path.stem,
        attrs={"source_file": str(path), "fps": fps},
    )


# ============================================================================ predict I/O
_DEFAULT_LAYOUT = {5: "BTCHW", 4: "TCHW", 3: "THW", 2: "TN"}


def read_array_file(path, layout: str | None = None, **options) -> SpatioTemporalData:
    """Read the input of a prediction: ``.npy``, ``.npz``, NetCDF/Zarr/GRIB, CSV or video.

    ``.npy``/``.npz`` arrays use ``layout`` (default by number of dims: 5 -> BTCHW, 4 -> TCHW,
    3 -> THW, 2 -> TN).  An ``.npz`` holds the array under ``x``, ``data``, ``array`` or
    ``forecast`` (or its only array), optionally ``times``, ``mask``, ``lat``, ``lon``.
    Other ``options`` go to :func:`from_xarray`, :func:`from_csv` or :func:`from_video`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, EOFError, OSError) as e:
            raise ValueError(f"{path}: cannot read as .npy, the file is corrupt or truncated ({e})") from e
        lay = layout or _DEFAULT_LAYOUT.get(arr.ndim)
        if lay is None:
            raise ValueError(
                f"{path}: cannot guess the layout of an array of shape {arr.shape}; pass layout=..."
            )
        return from_numpy(arr, layout=lay, name=path.stem, attrs={"source_file": str(path)}, **options)
    if suffix == ".npz":
        import zipfile

        try:
            with np.load(path, allow_pickle=False) as z:
                content = {k: z[k] for k in z.files}
        except (ValueError, EOFError, OSError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path}: cannot read as .npz, the file is corrupt or truncated ({e})") from e
        key = options.pop("key", None) or next(
            (k for k in ("x", "data", "array", "forecast") if k in content), None
        )
        if key is None:
            arrays = [k for k in content if k not in ("times", "time", "mask", "lat", "lon")]
            if len(arrays) != 1:
                raise ValueError(
                    f"{path}: expected an array named x/data/array/forecast (or a single array), found {list(content)}"
                )
            key = arrays[0]
        if key not in content:
            raise ValueError(f"{path}: no array {key!r}; the file holds {list(content)}")
        arr = content[key]
        lay = layout or _DEFAULT_LAYOUT.get(arr.ndim)
        if lay is None:
            raise ValueError(
                f"{path}: cannot guess the layout of {key!r} with shape {arr.shape}; pass layout=..."
            )
        coords = None
        if "lat" in content and "lon" in content and lay in ("TCHW", "THWC", "THW", "BTCHW", "BTHWC", "BTHW"):
            coords = {"lat": content["lat"], "lon": content["lon"]}
        times = content.get("times", content.get("time"))
        return from_numpy(
            arr,
            layout=lay,
            times=times,
            mask=content.get("mask"),
            coords=coords,
            name=path.stem,
            attrs={"source_file": str(path)},
            **options,
        )
    if suffix in _NETCDF or suffix in _GRIB or suffix == ".zarr" or path.is_dir():
        return from_xarray(path, **options)
    if suffix in (".csv", ".txt", ".tsv"):
        if suffix == ".tsv":
            options.setdefault("sep", "\t")
        return from_csv(path, **options)
    if suffix in _VIDEO:
        return from_video(path, **options)
    raise ValueError(
        f"{path}: unsupported file type {suffix!r}; expected .npy, .npz, .nc, .zarr, .grib, .csv or a video/GIF"
    )


def _future_times(like: SpatioTemporalData | None, n: int, start_time=None, step=None):
    if step is None and like is not None:
        step = like.attrs.get("step")
        if step is None and like.times is not None and like.times[-1] is not None and len(like.times[-1]) > 1:
            step = np.median(np.diff(like.times[-1]))
    if step is not None and not isinstance(step, np.timedelta64):
        import pandas as pd

        step = pd.Timedelta(step).to_timedelta64()
    if (
        start_time is None
        and like is not None
        and like.times is not None
        and like.times[-1] is not None
        and step is not None
    ):
        start_time = like.times[-1][-1] + step
    if start_time is None or step is None:
        return None, step
    return np.datetime64(start_time, "ns") + np.arange(n) * step.astype("timedelta64[ns]"), step


def write_forecast(path, array, like: SpatioTemporalData | None = None, start_time=None, step=None) -> Path:
    """Write a forecast in the format family of ``path``'s suffix.

    Parameters
    ----------
    path: ``.npy``, ``.npz``, ``.nc`` (NetCDF via xarray) or ``.csv`` (sensor data, wide).
    array: ``(T_out, C, H, W)`` / ``(T_out, N, C)`` or with a leading batch dimension; numpy or torch.
    like: the input data (from :func:`read_array_file`); supplies channel names, coordinates,
        sensor ids, and the times, which are continued by the input's time step.
    start_time, step: override the first forecast time and the step.

    NetCDF: one variable per channel with dims ``(time, <space dims>)`` (a batch adds a leading
    ``sample`` dim and uses ``lead_time`` instead of ``time``).  CSV: a ``time`` column (or
    ``step``) and one column per sensor (``sensor:channel`` when there are several channels).
    """
    path = Path(path)
    arr = np.asarray(to_numpy(array), dtype=np.float32)
    kind = like.kind if like is not None else ("sensor" if arr.ndim == 3 else "grid")
    base = 4 if kind == "grid" else 3
    if arr.ndim not in (base, base + 1):
        want = "(T, C, H, W)" if kind == "grid" else "(T, N, C)"
        raise ValueError(
            f"write_forecast: expected {want} or with a batch dim for {kind} data, got shape {arr.shape}"
        )
    batched = arr.ndim == base + 1
    T = arr.shape[1 if batched else 0]
    times, step = _future_times(like, T, start_time, step)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(path, arr)
        return path
    if suffix == ".npz":
        extra = {} if times is None else {"times": times}
        np.savez(path, forecast=arr, **extra)
        return path
    C = arr.shape[-3] if kind == "grid" else arr.shape[-1]
    channels = (
        list(like.channels) if like is not None and len(like.channels) == C else [f"c{i}" for i in range(C)]
    )
    if suffix in _NETCDF:
        import xarray as xr

        lead = ("sample", "lead_time") if batched else ("time",)
        tcoord = {}
        if batched and step is not None:
            tcoord["lead_time"] = (np.arange(1, T + 1) * step).astype("timedelta64[ns]")
        elif not batched and times is not None:
            tcoord["time"] = times
        if kind == "grid":
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
            dims = (*lead, *space)
            data_vars = {ch: (dims, np.take(arr, i, axis=-3)) for i, ch in enumerate(channels)}
        else:
            sdim = (like.attrs.get("space_dims") or ["sensor"])[0] if like is not None else "sensor"
            ids = like.attrs.get("sensor_ids") if like is not None else None
            if ids is not None:
                tcoord[sdim] = np.asarray(ids)
            dims = (*lead, sdim)
            data_vars = {ch: (dims, arr[..., i]) for i, ch in enumerate(channels)}
        var_attrs = (like.attrs.get("var_attrs") or {}) if like is not None else {}
        ds = xr.Dataset(data_vars, coords=tcoord, attrs={"title": "stpatch forecast"})
        for ch in channels:
            if ch in var_attrs:
                ds[ch].attrs.update(
                    {k: v for k, v in var_attrs[ch].items() if isinstance(v, str | int | float)}
                )
        ds.to_netcdf(path)
        return path
    if suffix == ".csv":
        import pandas as pd

        if kind != "sensor":
            raise ValueError(
                f"{path}: CSV output is for sensor data (T, N, C); write grids as .npy, .npz or .nc"
            )
        if batched:
            if arr.shape[0] != 1:
                raise ValueError(
                    f"{path}: CSV holds one forecast; got a batch of {arr.shape[0]} (use .npy/.npz/.nc)"
                )
            arr = arr[0]
        ids = like.attrs.get("sensor_ids") if like is not None else None
        ids = ids if ids is not None and len(ids) == arr.shape[1] else [str(i) for i in range(arr.shape[1])]
        if C == 1:
            cols = list(ids)
        else:
            cols = [f"{s}:{ch}" for s in ids for ch in channels]
        df = pd.DataFrame(arr.reshape(T, -1), columns=cols)
        if times is not None:
            df.insert(0, "time", pd.to_datetime(times))
        else:
            df.insert(0, "step", np.arange(1, T + 1))
        df.to_csv(path, index=False)
        return path
    raise ValueError(f"{path}: unsupported forecast format {suffix!r}; expected .npy, .npz, .nc or .csv")
