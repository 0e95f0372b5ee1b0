"""Sensor tables (CSV, wide or long) -> ``SpatioTemporalData``; sensor forecasts -> a wide CSV.

* :func:`from_csv` - one column per sensor (wide) or one row per (time, sensor) (long).
* :func:`read_coords`, :func:`read_adjacency` - sensor coordinates and adjacency matrices.
* :func:`write_csv` - the format table's writer for ``.csv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core import SpatioTemporalData
from .xarray_io import LAT_NAMES, LON_NAMES

if TYPE_CHECKING:
    from .formats import Forecast

__all__ = ["from_csv", "read_coords", "read_adjacency", "write_csv"]

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
        lat, lon = _pick(coords.columns, LAT_NAMES), _pick(coords.columns, LON_NAMES)
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
        # one value per (time, sensor): a repeated pair would silently keep whichever row came last
        repeated = pd.Series(t_codes * len(s_uniq) + s_codes).duplicated(keep=False).to_numpy()
        if repeated.any():
            first = int(np.argmax(repeated))
            raise ValueError(
                f"{path}: {int(repeated.sum())} rows repeat a ({tc}, {sensor_col}) pair, e.g. rows {first} .. with "
                f"({t[first]}, {df[sensor_col].iloc[first]!r}); expected one row per time and sensor: drop or "
                "average the duplicates"
            )
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




def write_csv(tmp: Path, forecast: Forecast) -> None:
    """A ``time`` column (or ``step``) and one column per sensor (``sensor:channel`` when there are
    several channels); one forecast, not a batch."""
    import pandas as pd

    arr, like, T = forecast.array, forecast.like, forecast.steps
    if forecast.batched:
        if arr.shape[0] != 1:
            raise ValueError(
                f"{forecast.path}: CSV holds one forecast; got a batch of {arr.shape[0]} (use .npy/.npz/.nc)"
            )
        arr = arr[0]
    ids = like.attrs.get("sensor_ids") if like is not None else None
    ids = ids if ids is not None and len(ids) == arr.shape[1] else [str(i) for i in range(arr.shape[1])]
    if len(forecast.channels) == 1:
        cols = list(ids)
    else:
        cols = [f"{s}:{ch}" for s in ids for ch in forecast.channels]
    df = pd.DataFrame(arr.reshape(T, -1), columns=cols)
    if forecast.times is not None:
        df.insert(0, "time", pd.to_datetime(forecast.times))
    else:
        df.insert(0, "step", np.arange(1, T + 1))
    df.to_csv(tmp, index=False)
