"""Do a sensor run's region features separate a known grouping better than raw-value statistics?

The known grouping comes from the data's own structure, never from the values: communities of the
road graph (spectral clustering of the adjacency matrix) or k-means clusters of the sensors'
coordinates. The raw-value statistics are each sensor's mean, standard deviation and 5th / 50th /
95th percentile of its input values over the same windows the features are pooled over. Both are
scored with :func:`~stpatch.analysis.feature_maps.separation` (leave-one-out k-nearest-neighbour
balanced accuracy), so the margin between them says how much more of the grouping the features carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SeparationResult", "known_sensor_groups", "sensor_separation", "sensor_value_statistics"]

GROUPINGS = ("adjacency", "coords")


@dataclass
class SeparationResult:
    """Scores of the features and of the raw-value statistics on the same known grouping.

    Attributes:
        features, statistics: balanced leave-one-out k-NN accuracy (chance: 1 / groups for balanced groups).
        labels: ``(N,)`` the known group of every sensor.
        windows: input windows the features and statistics were pooled over.
        grouping: ``"adjacency"`` or ``"coords"``.
    """

    features: float
    statistics: float
    labels: np.ndarray
    windows: int
    grouping: str

    @property
    def margin(self) -> float:
        """``features - statistics``: positive when the features separate the groups better."""
        return self.features - self.statistics


def known_sensor_groups(meta: dict[str, Any], groups: int = 4, grouping: str = "adjacency") -> np.ndarray:
    """``(N,)`` group labels from a sensor data set's structure (``meta`` of a run: ``adjacency``, ``coords``).

    ``"adjacency"``: spectral clustering of the symmetrised adjacency matrix into ``groups`` parts;
    ``"coords"``: k-means of the sensors' (lat, lon) into ``groups`` clusters.
    """
    from sklearn.cluster import KMeans, SpectralClustering

    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    key = "adjacency" if grouping == "adjacency" else "coords"
    if meta.get(key) is None:
        raise ValueError(f"grouping={grouping!r} needs the data's {key}, which this run does not carry; "
                         f"use grouping={'coords' if key == 'adjacency' else 'adjacency'!r} or data that has it")
    if grouping == "adjacency":
        a = np.asarray(meta["adjacency"], dtype=np.float64)
        affinity = np.maximum(a, a.T) + 1e-6  # symmetric and connected, as spectral clustering needs
        return SpectralClustering(groups, affinity="precomputed", random_state=0).fit_predict(affinity)
    return KMeans(groups, n_init=4, random_state=0).fit_predict(np.asarray(meta["coords"], dtype=np.float64))


def sensor_value_statistics(x: np.ndarray) -> np.ndarray:
    """``(W, T, N)`` input values -> ``(N, 5)``: each sensor's mean, std, 5th, 50th and 95th percentile."""
    per_sensor = np.moveaxis(np.asarray(x, dtype=np.float64), -1, 0).reshape(x.shape[-1], -1)
    return np.stack([per_sensor.mean(1), per_sensor.std(1), *np.percentile(per_sensor, [5, 50, 95], axis=1)], 1)


def sensor_separation(run_or_checkpoint: Any, groups: int = 4, grouping: str = "adjacency", split: str = "test",
                      limit_batches: int | None = None, neighbours: int = 5) -> SeparationResult:
    """Score a sensor run's region features and its inputs' raw-value statistics on a known grouping.

    Args:
        run_or_checkpoint: a trained sensor run (directory, checkpoint or loaded run).
        groups: how many groups to form; grouping: ``"adjacency"`` or ``"coords"``.
        split, limit_batches: the input windows to pool over.
        neighbours: ``k`` of the k-nearest-neighbour score.
    """
    from stpatch.analysis.feature_maps import separation
    from stpatch.analysis.features import region_features_of
    from stpatch.analysis.inputs import as_run, run_batches, run_data

    run = as_run(run_or_checkpoint)
    if run.meta["kind"] != "sensor":
        raise ValueError(f"sensor_separation needs a sensor run, got a {run.meta['kind']!r} run; "
                         "for grids see scripts/feature_separation_era5.py")
    labels = known_sensor_groups(run.meta, groups, grouping)
    batches = list(run_batches(run_data(run, None, split), split, limit_batches))
    values, windows = region_features_of(run.module, batches, "sensor")
    x = np.concatenate([run.scaler.inverse_transform(b["x"]).numpy()[..., 0] for b in batches])  # (W, T_in, N)
    stats = sensor_value_statistics(x)
    return SeparationResult(separation(values, labels, neighbours), separation(stats, labels, neighbours),
                            labels, windows, grouping)
