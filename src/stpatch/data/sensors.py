"""Sensor-network data sets: Los-loop traffic speeds and Hungarian chickenpox cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .adapters import from_csv
from .core import DatasetInfo, SpatioTemporalData

__all__ = ["LOS_FILES", "CHICKENPOX_FILE", "load_los_loop", "load_chickenpox"]

LOS_FILES = {
    "speed": "traffic/los_loop/los_speed.csv",
    "adjacency": "traffic/los_loop/los_adj.csv",
    "coords": "traffic/los_loop/sensor_locations_metr_la.csv",
}
CHICKENPOX_FILE = "graph/chickenpox.json"


def load_los_loop(
    data_dir: Path,
    info: DatasetInfo | None = None,
    null_value: float | None = 0.0,
    start: str = "2012-03-01T00:00",
    with_coords: bool = True,
) -> SpatioTemporalData:
    """Los-loop: speeds (mph) of 207 loop detectors every 5 minutes, ``(2016, 207, 1)``.

    Zeros are missing readings (``null_value=0``; they become ``mask == False``).  The file has
    no time column; the T-GCN paper dates the week 1-7 March 2012, so times start at ``start``.
    The adjacency ``(207, 207)`` comes from ``los_adj.csv`` and the coordinates ``(207, 2)``
    from the METR-LA sensor locations, matched by sensor id.
    """
    from .registry import missing_file_error

    data_dir = Path(data_dir)
    need = ("speed", "adjacency", "coords") if with_coords else ("speed", "adjacency")
    for key in need:
        if not (data_dir / LOS_FILES[key]).exists():
            raise missing_file_error("los_loop", data_dir, LOS_FILES[key])
    data = from_csv(
        data_dir / LOS_FILES["speed"],
        layout="wide",
        coords=data_dir / LOS_FILES["coords"] if with_coords else None,
        adjacency=data_dir / LOS_FILES["adjacency"],
        null_value=null_value,
        name="los_loop",
    )
    T = data.lengths[0]
    data.times = [np.datetime64(start, "ns") + np.arange(T) * np.timedelta64(5, "m")]
    data.info = info
    data.channels = ["speed"]
    data.attrs.update(units="mph", step=np.timedelta64(5, "m"))
    data.validate()
    return data


def load_chickenpox(data_dir: Path, info: DatasetInfo | None = None) -> SpatioTemporalData:
    """Weekly chickenpox cases in the 20 Hungarian counties, ``(521, 20, 1)``, as distributed by
    PyTorch Geometric Temporal (``FX``, already standardised per county), with a binary adjacency
    ``(20, 20)`` from the 102 county ``edges`` (self loops included as in the file).
    """
    from .registry import missing_file_error

    path = Path(data_dir) / CHICKENPOX_FILE
    if not path.exists():
        raise missing_file_error("chickenpox", Path(data_dir), CHICKENPOX_FILE)
    try:
        js = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); delete it and download it again") from e
    for key in ("FX", "edges"):
        if key not in js:
            raise ValueError(f"{path}: expected keys 'FX' and 'edges', found {sorted(js)}")
    fx = np.asarray(js["FX"], dtype=np.float32)
    if fx.ndim != 2:
        raise ValueError(f"{path}: 'FX' should be weeks x counties, found shape {fx.shape}")
    n = fx.shape[1]
    edges = np.asarray(js["edges"], dtype=np.int64)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"{path}: 'edges' should be a list of [i, j] pairs, found shape {edges.shape}")
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise ValueError(f"{path}: 'edges' refer to node {int(edges.max())} but 'FX' has {n} counties")
    adj = np.zeros((n, n), dtype=np.float32)
    adj[edges[:, 0], edges[:, 1]] = 1.0
    ids = js.get("node_ids") or {}
    names = [None] * n
    for k, v in ids.items():
        if 0 <= int(v) < n:
            names[int(v)] = str(k)
    names = [s if s is not None else str(i) for i, s in enumerate(names)]
    return SpatioTemporalData(
        kind="sensor",
        segments=[fx[:, :, None]],
        channels=["cases_std"],
        adjacency=adj,
        info=info,
        name="chickenpox",
        attrs={
            "sensor_ids": names,
            "units": "standardised weekly cases",
            "source_file": str(path),
            "step": "1W",
        },
    )
