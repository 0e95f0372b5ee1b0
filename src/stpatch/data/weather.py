"""ERA5 hourly 2 m temperature over the UK (March 2019), NetCDF or GRIB.

One grid segment ``(744, 1, 33, 49)`` in kelvin with hourly times and ``coords["lat"]`` /
``coords["lon"]`` (latitude descending from 58 N to 50 N), so lat-weighted RMSE can be computed.
Time-of-day and day-of-week of every window step reach the batch as ``"tod"`` / ``"dow"``.
"""

from __future__ import annotations

from pathlib import Path

from .adapters import from_xarray
from .core import DatasetInfo, SpatioTemporalData

__all__ = ["ERA5_NETCDF", "ERA5_GRIB", "load_era5_uk_t2m"]

ERA5_NETCDF = "weather/era5_t2m_2019-03_uk.nc"
ERA5_GRIB = "weather/era5-2mt-2019-03-uk.grib"


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
    from .registry import missing_file_error

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
