"""Do region features separate a known grouping better than raw-value statistics? (issue 13, the measured margin)

Los-loop: the known grouping is the road network's own communities: spectral clustering of the
sensors' adjacency matrix (from the graph alone, never from the speeds) into ``--groups`` parts,
or with ``--grouping coords`` k-means of the sensors' coordinates.
The features are those of a trained sensor run (``stpatch train -c los_loop_stpnet_sensor``),
pooled over the test windows; the raw statistics are each sensor's mean, standard deviation, 5th,
50th and 95th percentile of its input speeds over the same windows. Both are scored with the same
leave-one-out k-nearest-neighbour balanced accuracy (:func:`stpatch.analysis.feature_maps.separation`).

    STPATCH_DATA_DIR=../shared/data python scripts/feature_separation.py RUN [--groups 4] [--limit-batches N]

Inference only (no training); nothing is written into RUN. The measurement is
:func:`stpatch.analysis.separation.sensor_separation`.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    from stpatch.analysis.separation import GROUPINGS, sensor_separation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained sensor run directory (Los-loop)")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--grouping", choices=GROUPINGS, default="adjacency",
                        help="communities of the adjacency graph, or k-means of the sensors' coordinates")
    parser.add_argument("--limit-batches", type=int, default=None)
    args = parser.parse_args()

    try:
        res = sensor_separation(args.run, args.groups, args.grouping, limit_batches=args.limit_batches)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    print(f"{res.windows} test windows, {res.labels.size} sensors, {args.groups} {args.grouping} groups "
          f"(sizes {np.bincount(res.labels).tolist()})")
    print(f"features   : balanced kNN accuracy {res.features:.3f}")
    print(f"raw stats  : balanced kNN accuracy {res.statistics:.3f}")
    print(f"margin     : {res.margin:+.3f}")


if __name__ == "__main__":
    main()
