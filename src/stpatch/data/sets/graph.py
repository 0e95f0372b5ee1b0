"""The graph family: ``chickenpox``, weekly cases in the 20 counties of Hungary (PyTorch Geometric Temporal)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core import DatasetInfo, SpatioTemporalData
from ..registry import missing_file_error

__all__ = ["CHICKENPOX", "DATASETS", "CHICKENPOX_FILE", "load_chickenpox"]

CHICKENPOX_FILE = "graph/chickenpox.json"

CHICKENPOX = DatasetInfo(
    name="chickenpox",
    kind="sensor",
    field="sensor",
    description="Weekly chickenpox cases in the 20 counties of Hungary, 2005-2014 (standardised)",
    source=(
        "B. Rozemberczki et al., 'Chickenpox cases in Hungary: a benchmark dataset for spatiotemporal signal "
        "processing with graph neural networks', 2021; PyTorch Geometric Temporal, "
        "https://github.com/benedekrozemberczki/pytorch_geometric_temporal (dataset/chickenpox.json)"
    ),
    license="as distributed by PyTorch Geometric Temporal (MIT)",
    files=(CHICKENPOX_FILE,),
    sample_shape="(20, 1) standardised weekly cases",
    t_in=4,
    t_out=1,
    step="1W",
    split="chronological 0.7 / 0.1 / 0.2 of the 521 weeks",
    default_split=(0.7, 0.1, 0.2),
    default_scaler="standard",
    units="standardised cases",
    metrics=("masked_mae", "masked_rmse"),
    urls={
        CHICKENPOX_FILE: (
            "https://raw.githubusercontent.com/benedekrozemberczki/pytorch_geometric_temporal/master/dataset/chickenpox.json",
            "724b48cfb274b2ecbb855bdb99b970b5ef9dd3671694fa477435dc1e08293735",
        ),
    },
    notes=(
        "t_in=4 lags, t_out=1 as in the PyTorch Geometric Temporal example. Values are already standardised "
        "(may be negative), so MAPE is not meaningful. No timestamps are stored in the file."
    ),
)


def load_chickenpox(data_dir: Path, info: DatasetInfo | None = None) -> SpatioTemporalData:
    """Weekly chickenpox cases in the 20 Hungarian counties, ``(521, 20, 1)``, as distributed by
    PyTorch Geometric Temporal (``FX``, already standardised per county), with a binary adjacency
    ``(20, 20)`` from the 102 county ``edges`` (self loops included as in the file).
    """
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


DATASETS = ((CHICKENPOX, load_chickenpox),)
