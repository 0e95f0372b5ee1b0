"""The traffic family: ``los_loop``, speeds of 207 loop detectors on Los Angeles highways (T-GCN)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..adapters import from_csv
from ..core import DatasetInfo, SpatioTemporalData
from ..registry import missing_file_error

__all__ = ["LOS_LOOP", "DATASETS", "LOS_FILES", "load_los_loop"]

LOS_FILES = {
    "speed": "traffic/los_loop/los_speed.csv",
    "adjacency": "traffic/los_loop/los_adj.csv",
    "coords": "traffic/los_loop/sensor_locations_metr_la.csv",
}

LOS_LOOP = DatasetInfo(
    name="los_loop",
    kind="sensor",
    field="sensor",
    description="Los-loop: traffic speeds of 207 loop detectors on Los Angeles highways, every 5 min, 7 days",
    source=(
        "L. Zhao et al., 'T-GCN: A Temporal Graph Convolutional Network for Traffic Prediction', IEEE T-ITS 2019, "
        "https://github.com/lehaifeng/T-GCN; sensor locations from DCRNN, https://github.com/liyaguang/DCRNN"
    ),
    license="as distributed by the T-GCN and DCRNN repositories (MIT)",
    files=tuple(LOS_FILES.values()),
    sample_shape="(207, 1) speed in mph",
    t_in=12,
    t_out=12,
    step="5min",
    split="chronological 0.7 / 0.1 / 0.2 of the 2016 steps (no window crosses a boundary)",
    default_split=(0.7, 0.1, 0.2),
    default_scaler="standard",
    units="mph",
    metrics=("masked_mae", "masked_rmse", "masked_mape"),
    urls={
        LOS_FILES["speed"]: (
            (
                "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/data/los_speed.csv",
                "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/T-GCN/T-GCN-PyTorch/data/los_speed.csv",
            ),
            "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4",
        ),
        LOS_FILES["adjacency"]: (
            (
                "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/data/los_adj.csv",
                "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/T-GCN/T-GCN-PyTorch/data/los_adj.csv",
            ),
            "7a6eb41e10677992b5af50f5ab187c6c05c5c3a92cb973950cfddbf857361e76",
        ),
        LOS_FILES["coords"]: (
            "https://raw.githubusercontent.com/liyaguang/DCRNN/master/data/sensor_graph/graph_sensor_locations.csv",
            "eb8ea96e07358b45d0e4ba3b89c2673fa20c54af50150249e627389e749ade6f",
        ),
    },
    notes=(
        "Zeros are missing readings (null_value=0 -> mask False; score with masked metrics, null 0). "
        "Times start 2012-03-01 00:00 (T-GCN paper: 1-7 March 2012); the CSV itself has no time column. "
        "options: null_value, start, with_coords. Baselines: climatology (historical average), persistence (last value)."
    ),
)


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


DATASETS = ((LOS_LOOP, load_los_loop),)
