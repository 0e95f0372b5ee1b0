"""Do ERA5 region features separate land from sea better than raw-value statistics? (issue 13, the measured margin)

Each region of a trained ERA5 grid run (a cell of the token grid, its pixel box from
:func:`stpatch.analysis.features.with_geometry`) is labelled land or sea by the majority of its
pixels, using the 1 km GLOBE land mask of the ``global-land-mask`` package at the data's
latitude/longitude (lakes count as land). It is not a dependency of stpatch: install it apart
(``pip install global-land-mask``, or put an unpacked wheel on PYTHONPATH).

The features are those of the run pooled over the test windows; the raw statistics are each region's
mean, standard deviation and mean diurnal amplitude (max - min of the mean hourly cycle) of its
spatially averaged 2 m temperature over the same hours. Both are scored with the same leave-one-out
k-nearest-neighbour balanced accuracy (:func:`stpatch.analysis.feature_maps.separation`), as
``scripts/feature_separation.py`` does for Los-loop.

    STPATCH_DATA_DIR=../shared/data python scripts/feature_separation_era5.py RUN [--limit-batches N]

Inference only (no training); nothing is written into RUN.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    try:
        from global_land_mask import globe
    except ImportError:
        raise SystemExit("needs the land mask of `pip install global-land-mask` (not a dependency of stpatch)") from None

    from stpatch.analysis.feature_maps import separation
    from stpatch.analysis.features import region_features_of, with_geometry
    from stpatch.analysis.inputs import as_run, run_batches, run_data, spatial_coords

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained grid run on ERA5 (era5_uk_t2m)")
    parser.add_argument("--limit-batches", type=int, default=None)
    parser.add_argument("--neighbours", type=int, default=5)
    args = parser.parse_args()

    run = as_run(args.run)
    if run.meta["kind"] != "grid":
        raise SystemExit("needs a grid run with latitude/longitude (ERA5)")
    dm = run_data(run, None, "test")
    where = spatial_coords(run, dm)
    if "lat" not in where or "lon" not in where:
        raise SystemExit("the run's data carries no latitude/longitude")
    batches = list(run_batches(dm, "test", args.limit_batches))
    values, windows = region_features_of(run.module, batches, "grid")
    rf = with_geometry(values, windows, run, dm)

    lon = (where["lon"] + 180.0) % 360.0 - 180.0
    land = globe.is_land(*np.meshgrid(where["lat"], lon, indexing="ij"))  # (H, W)
    # consecutive test windows (stride 1) start one hour apart: their first steps, then the last window's rest
    x = np.concatenate([run.scaler.inverse_transform(b["x"]).numpy()[:, :, 0] for b in batches])  # (W, T_in, H, W)
    hours = np.concatenate([x[:, 0], x[-1, 1:]])  # (T, H, W)
    step_h = float((run.profile or {}).get("step_seconds") or 3600.0) / 3600.0

    ny, nx = rf.grid_shape
    labels, stats, fractions = [], [], []
    for iy in range(ny):
        for ix in range(nx):
            y0, y1, x0, x1 = (int(v) for v in rf.boxes[iy, ix])
            fraction = float(land[y0:y1, x0:x1].mean())
            series = hours[:, y0:y1, x0:x1].mean((1, 2))
            hour_of_day = (np.arange(series.size) * step_h).astype(int) % 24
            cycle = np.array([series[hour_of_day == h].mean() for h in np.unique(hour_of_day)])
            fractions.append(fraction)
            labels.append(int(fraction > 0.5))
            stats.append([series.mean(), series.std(), cycle.max() - cycle.min()])
    labels, stats = np.array(labels), np.array(stats)
    f_score = separation(rf.flat(), labels, args.neighbours)
    s_score = separation(stats, labels, args.neighbours)
    print(f"{windows} test windows ({hours.shape[0]} hours), {labels.size} regions of {ny} x {nx}: "
          f"{int(labels.sum())} land, {int((1 - labels).sum())} sea (majority of pixels; "
          f"{sum(0.2 < f < 0.8 for f in fractions)} regions between 20 and 80 % land)")
    print(f"features   : balanced {args.neighbours}-NN accuracy {f_score:.3f}")
    print(f"raw stats  : balanced {args.neighbours}-NN accuracy {s_score:.3f}  (mean, std, diurnal amplitude)")
    print(f"margin     : {f_score - s_score:+.3f}")
    clear = (np.array(fractions) < 0.2) | (np.array(fractions) > 0.8)  # regions mostly one or the other
    if len(set(labels[clear])) == 2 and clear.sum() > args.neighbours + 1:
        print(f"only the {int(clear.sum())} regions under 20 % or over 80 % land: features "
              f"{separation(rf.flat()[clear], labels[clear], args.neighbours):.3f}, raw stats "
              f"{separation(stats[clear], labels[clear], args.neighbours):.3f}")
    print("land fraction per region (rows north to south as the data has them):")
    print(np.array2string(np.array(fractions).reshape(ny, nx), precision=2))


if __name__ == "__main__":
    main()
