"""The weather family: ``era5_uk_t2m``, ERA5 hourly 2 m temperature over the UK (March 2019).

One grid segment ``(744, 1, 33, 49)`` in kelvin with hourly times and ``coords["lat"]`` /
``coords["lon"]`` (latitude descending from 58 N to 50 N), so lat-weighted RMSE can be computed.
Time-of-day and day-of-week of every window step reach the batch as ``"tod"`` / ``"dow"``.
The public sample is GRIB; :func:`after_download` converts it to NetCDF when cfgrib is installed.
"""

from __future__ import annotations

from pathlib import Path

from ...atomic import atomic_path
from ..adapters import from_xarray
from ..core import DatasetInfo, SpatioTemporalData
from ..registry import missing_file_error

__all__ = ["ERA5", "DATASETS", "ERA5_NETCDF", "ERA5_GRIB", "load_era5_uk_t2m", "after_download"]

ERA5_NETCDF = "weather/era5_t2m_2019-03_uk.nc"
ERA5_GRIB = "weather/era5-2mt-2019-03-uk.grib"


ERA5 = DatasetInfo(
    name="era5_uk_t2m",
    kind="grid",
    field="weather",
    description="ERA5 hourly 2 m temperature over the UK, March 2019, 0.25 deg",
    source=(
        "ECMWF ERA5 (Hersbach et al. 2020, doi:10.1002/qj.3803) via Copernicus C3S; sample file from "
        "https://github.com/pydata/xarray-data (era5-2mt-2019-03-uk.grib)"
    ),
    license="Copernicus licence",
    files=(ERA5_NETCDF, f"{ERA5_GRIB} (alternative, needs cfgrib)"),
    sample_shape="(1, 33, 49) kelvin; latitude 58..50 N, longitude 10 W..2 E",
    t_in=12,
    t_out=12,
    step="1h",
    split="chronological 0.7 / 0.1 / 0.2 of the 744 hours (train to 2019-03-22 16:00, val to 2019-03-25 18:00, then test)",
    default_split=(0.7, 0.1, 0.2),
    default_scaler="standard",
    units="K",
    urls={
        ERA5_GRIB: (
            "https://github.com/pydata/xarray-data/raw/master/era5-2mt-2019-03-uk.grib",
            "e5e82609f0e28e84822852e15d20c88dbb4b142a30264a7e6f87b9b5c7501df9",
        ),
    },
    notes=(
        "options: source ('auto' | 'netcdf' | 'grib'), chunks (None loads into memory; an int keeps it lazy). "
        "coords['lat'] feeds lat-weighted RMSE; batches carry 'tod'/'dow'. Baselines: persistence and a "
        "diurnal climatology (strong daily cycle). download() converts the GRIB to NetCDF when cfgrib is present."
    ),
)


def _has_cfgrib() -> bool:
    try:
        import cfgrib  # noqa: F401
    except Exception:  # noqa: BLE001 - eccodes may fail to load its library
        return False
    return True


def load_era5_uk_t2m(
    data_dir: Path,
    info: DatasetInfo | None = None,
    source: str = "auto",
    chunks: int | None = None,
) -> SpatioTemporalData:
    """ERA5 t2m as grid data.

    Parameters
    ----------
    source: ``"netcdf"``, ``"grib"`` (needs cfgrib) or ``"auto"`` (NetCDF when present, else GRIB).
    chunks: time steps per dask chunk to keep the field lazy; None (default) loads it into
        memory (5 MB).
    """
    data_dir = Path(data_dir)
    nc, grib = data_dir / ERA5_NETCDF, data_dir / ERA5_GRIB
    if source not in ("auto", "netcdf", "grib"):
        raise ValueError(f"era5_uk_t2m: source should be 'auto', 'netcdf' or 'grib', got {source!r}")
    if source == "netcdf" or (source == "auto" and nc.exists()):
        path = nc
    elif source == "grib" or (source == "auto" and grib.exists() and _has_cfgrib()):
        path = grib
    else:
        path = nc
    if not path.exists():
        alt = f" (or {grib} with cfgrib installed)" if path == nc else ""
        raise missing_file_error(
            "era5_uk_t2m", data_dir, str(path.relative_to(data_dir)), what=f"ERA5 t2m{alt}"
        )
    data = from_xarray(
        path,
        variables=["t2m"],
        time="time",
        space=("latitude", "longitude"),
        chunks=chunks,
        name="era5_uk_t2m",
    )
    h, w = data.spatial_shape
    if (h, w) != (33, 49):
        raise ValueError(
            f"{path}: expected the UK ERA5 grid of 33 x 49 (latitude x longitude), found {h} x {w}"
        )
    data.info = info
    data.attrs["units"] = "K"
    return data


def after_download(info: DatasetInfo, data_dir: Path) -> list[Path]:
    """Convert the downloaded GRIB to the NetCDF the loader prefers (needs cfgrib; skipped without it).

    Returns ``[netcdf path]`` when it wrote one, else ``[]`` (the loader can read the GRIB itself).
    """
    nc, grib = Path(data_dir) / ERA5_NETCDF, Path(data_dir) / ERA5_GRIB
    if nc.exists() or not grib.exists():
        return []
    try:
        import xarray as xr

        ds = xr.open_dataset(grib, engine="cfgrib", backend_kwargs={"indexpath": ""})
        drop = [c for c in ("number", "step", "surface", "valid_time") if c in ds.coords]
        with atomic_path(nc) as tmp:
            ds[["t2m"]].drop_vars(drop).to_netcdf(tmp)
    except Exception:  # noqa: BLE001 - the loader can read the GRIB itself
        return []
    return [nc]


DATASETS = ((ERA5, load_era5_uk_t2m),)
