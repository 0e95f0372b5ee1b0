"""Moved: the ERA5 data set lives in :mod:`stpatch.data.sets.weather` (its entry, loader and download step).

This module re-exports what it used to define, for code that imports it from here.
"""

from __future__ import annotations

from .sets.weather import ERA5_GRIB, ERA5_NETCDF, load_era5_uk_t2m

__all__ = ["ERA5_NETCDF", "ERA5_GRIB", "load_era5_uk_t2m"]
