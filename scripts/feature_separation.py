"""Do region features separate a known grouping better than raw-value statistics? (issue 13, the measured margin)

Los-loop: the known grouping is the road network's own communities: spectral clustering of the
sensors' adjacency matrix (from the graph alone, never from the speeds) into ``--groups`` parts,
or with ``--grouping coords`` k-means of the sensors' coordinates.
The features are those of a trained sensor run (``stpatch train -c los_loop_stpnet_sensor``),
pooled over the test windows; the raw statistics are each sensor's mean, standard deviation, 5th,
50th and 95th percentile of its input speeds over the same windows. Both are scored with the same
leave-one-out k-nearest-neighbour balanced accuracy (:func:`stpatch.analysis.feature_maps.separation`).

    STPATCH_DATA_DIR=../shared/data python scripts/feature_separation.py RUN [--groups 4] [--limit-batches N]

Inference only (no training); nothing is written into RUN.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    from sklearn.cluster import SpectralClustering

    from stpatch.analysis.feature_maps import separation
    from stpatch.analysis.features import region_features_of
    from stpatch.analysis.inputs import as_run, run_batches, run_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained sensor run directory (Los-loop)")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--grouping", choices=("adjacency", "coords"), default="adjacency",
                        help="communities of the adjacency graph, or k-means of the sensors' coordinates")
    parser.add_argument("--limit-batches", type=int, default=None)
    args = parser.parse_args()

    run = as_run(args.run)
    if run.meta["kind"] != "sensor" or run.meta.get("adjacency") is None:
        raise SystemExit("needs a sensor run whose data carries an adjacency matrix (Los-loop)")
    dm = run_data(run, None, "test")
    batches = list(run_batches(dm, "test", args.limit_batches))
    values, windows = region_features_of(run.module, batches, "sensor")
    if args.grouping == "adjacency":
        adjacency = np.asarray(run.meta["adjacency"], dtype=np.float64)
        affinity = np.maximum(adjacency, adjacency.T)
        labels = SpectralClustering(args.groups, affinity="precomputed", random_state=0).fit_predict(affinity + 1e-6)
    else:
        from sklearn.cluster import KMeans

        labels = KMeans(args.groups, n_init=4, random_state=0).fit_predict(np.asarray(run.meta["coords"]))
    x = np.concatenate([run.scaler.inverse_transform(b["x"]).numpy()[..., 0] for b in batches])  # (W, T_in, N)
    per_sensor = x.transpose(2, 0, 1).reshape(x.shape[2], -1)
    stats = np.stack([per_sensor.mean(1), per_sensor.std(1), *np.percentile(per_sensor, [5, 50, 95], axis=1)], 1)
    f_score, s_score = separation(values, labels), separation(stats, labels)
    print(f"{windows} test windows, {values.shape[0]} sensors, {args.groups} {args.grouping} groups "
          f"(sizes {np.bincount(labels).tolist()})")
    print(f"features   : balanced kNN accuracy {f_score:.3f}")
    print(f"raw stats  : balanced kNN accuracy {s_score:.3f}")
    print(f"margin     : {f_score - s_score:+.3f}")


if __name__ == "__main__":
    main()
