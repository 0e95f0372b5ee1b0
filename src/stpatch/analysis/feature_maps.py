"""Pictures and summaries of region features: PCA-to-RGB, k-means clusters, and how well features separate labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stpatch.analysis.features import RegionFeatures

__all__ = ["kmeans_regions", "pca_rgb", "save_feature_maps", "separation"]


def pca_rgb(x: np.ndarray) -> np.ndarray:
    """``(R, D) -> (R, 3)`` in ``[0, 1]``: the first three principal components, each stretched to its range."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(0)
    if x.shape[0] < 2 or not np.any(x):
        return np.full((x.shape[0], 3), 0.5)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    pcs = x @ vt[:3].T
    if pcs.shape[1] < 3:
        pcs = np.pad(pcs, ((0, 0), (0, 3 - pcs.shape[1])))
    lo, hi = pcs.min(0), pcs.max(0)
    return (pcs - lo) / np.where(hi > lo, hi - lo, 1.0)


def kmeans_regions(x: np.ndarray, k: int | None = None, k_max: int = 8, seed: int = 0) -> tuple[np.ndarray, int]:
    """k-means labels ``(R,)`` of the rows of ``x`` ``(R, D)`` and the ``k`` used.

    Without ``k`` it is chosen from 2..``k_max`` by the best silhouette score.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = np.asarray(x, dtype=np.float64)
    r = x.shape[0]
    if r < 3:
        return np.zeros(r, dtype=int), 1
    if k is not None:
        k = int(min(max(k, 1), r))
        return KMeans(k, n_init=4, random_state=seed).fit_predict(x), k
    best = (-2.0, np.zeros(r, dtype=int), 1)
    for kk in range(2, min(k_max, r - 1) + 1):
        labels = KMeans(kk, n_init=4, random_state=seed).fit_predict(x)
        if len(set(labels)) < 2:
            continue
        score = silhouette_score(x, labels)
        if score > best[0]:
            best = (score, labels, kk)
    return best[1], best[2]


def separation(x: np.ndarray, labels: np.ndarray, neighbours: int = 5) -> float:
    """How well ``x`` ``(R, D)`` separates known ``labels`` ``(R,)``: leave-one-out k-nearest-neighbour
    balanced accuracy on standardised columns (0.5 = chance for two balanced classes, 1 = perfect)."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(np.asarray(x, dtype=np.float64))
    _, labels = np.unique(np.asarray(labels), return_inverse=True)
    clf = KNeighborsClassifier(n_neighbors=neighbours + 1).fit(x, labels)
    # the nearest neighbour of a training point is itself: drop it (leave-one-out)
    idx = clf.kneighbors(x, return_distance=False)[:, 1:]
    pred = np.array([np.bincount(v).argmax() for v in labels[idx]])
    return float(balanced_accuracy_score(labels, pred))


def sensor_positions(coords: np.ndarray | None, n: int) -> np.ndarray:
    """``(N, 2)`` map positions of ``n`` sensors: (longitude, latitude) from ``coords`` ``(N, 2)`` as
    (lat, lon), or, without coordinates, a circle in index order."""
    if coords is not None:
        return np.stack([coords[:, 1], coords[:, 0]], 1)
    angle = 2 * np.pi * np.arange(n) / max(n, 1)
    return np.stack([np.cos(angle), np.sin(angle)], 1)


def sensor_axes(ax, xy: np.ndarray, located: bool) -> None:
    """Axes of a map of sensors at ``xy``: longitude/latitude with few enough ticks that their labels
    never overlap; without coordinates (sensors on a circle) no ticks but each sensor's index."""
    from matplotlib.ticker import MaxNLocator

    if located:
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        ax.xaxis.set_major_locator(MaxNLocator(4))  # longitudes need many digits: more labels collide
        ax.yaxis.set_major_locator(MaxNLocator(6))
        return
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("no coordinates: sensors in index order")
    if len(xy) <= 64:
        for i, (x, y) in enumerate(xy):
            ax.text(1.14 * x, 1.14 * y, str(i), ha="center", va="center", fontsize=6, color="0.3")
        ax.set_xlim(-1.3, 1.3)
        ax.set_ylim(-1.3, 1.3)


def _draw(rf: RegionFeatures, colours: np.ndarray, title: str, path: Path, labels: np.ndarray | None = None) -> Path:
    import matplotlib.pyplot as plt

    from stpatch.analysis.figures import save_figure

    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    if rf.kind == "grid":
        ny, nx = rf.grid_shape
        extent = None
        if rf.lat_bounds is not None and rf.lon_bounds is not None:
            extent = (float(np.nanmin(rf.lon_bounds)), float(np.nanmax(rf.lon_bounds)),
                      float(np.nanmin(rf.lat_bounds)), float(np.nanmax(rf.lat_bounds)))
            ax.set_xlabel("longitude")
            ax.set_ylabel("latitude")
        # row 0 is the first image row; with latitudes it is the northern/southern edge as the data has it
        origin = "upper" if extent is None or rf.lat_bounds[0, 0] >= rf.lat_bounds[-1, 0] else "lower"
        ax.imshow(colours.reshape(ny, nx, -1), extent=extent, origin=origin, interpolation="nearest", aspect="auto")
        if extent is None:
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.set_xlabel("region x")
            ax.set_ylabel("region y")
        if labels is not None and ny * nx <= 400:
            for i in range(ny):
                for j in range(nx):
                    if extent is None:
                        ax.text(j, i, str(labels[i * nx + j]), ha="center", va="center", fontsize=6, color="white")
    else:
        xy = sensor_positions(rf.coords, rf.values.shape[0])
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=36, edgecolors="k", linewidths=0.3)
        sensor_axes(ax, xy, rf.coords is not None)
    ax.set_title(title, fontsize=8)
    return save_figure(fig, path)


def save_feature_maps(rf: RegionFeatures, folder: str | Path, k: int | None = None) -> list[Path]:
    """``features_pca.png`` (first three principal components as RGB) and ``features_clusters.png``
    (k-means, ``k`` given or chosen by silhouette) on the grid or at the sensors' positions."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    x = rf.flat()
    rgb = pca_rgb(x)
    labels, k_used = kmeans_regions(x, k)
    cmap = plt.get_cmap("tab10" if k_used <= 10 else "tab20")
    colours = np.array([cmap(int(c) % cmap.N)[:3] for c in labels])
    what = "region" if rf.kind == "grid" else "sensor"
    return [_draw(rf, rgb, f"{what} features: first 3 principal components as RGB", folder / "features_pca.png"),
            _draw(rf, colours, f"{what} features: k-means, k={k_used}", folder / "features_clusters.png", labels)]
