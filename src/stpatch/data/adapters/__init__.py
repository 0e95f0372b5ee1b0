"""Adapters: the user's own arrays, NetCDF/Zarr/GRIB, CSV tables and videos -> SpatioTemporalData.

Everything is converted to the canonical layouts once, here at the edge:
grids ``(T, C, H, W)`` and sensor networks ``(T, N, C)``.

* :func:`from_numpy` - arrays in any common layout (views, no copies)      (``arrays``).
* :func:`from_xarray` - NetCDF / Zarr / GRIB files or xarray objects, lazily: dask chunks along
  time, and a window computes only the chunks it touches                  (``xarray_io``); a file's
  variables are read through a :class:`~.store.StoreVariable`, which every process opens itself (``store``).
* :func:`from_csv` - sensor tables, wide (one column per sensor) or long (time, sensor, value)
                                                                           (``tables``).
* :func:`from_video` - video files and animated GIFs (imageio v3) as float frames in [0, 1]
                                                                           (``video``).
* :func:`from_radar` - radar composites in any format pysteps imports, as rain rate in mm/h
                                                                           (``radar_files``).
* :func:`read_array_file` / :func:`write_forecast` - the input and output of ``stpatch predict``,
  dispatched by suffix through the one format table, :func:`register_format` (``formats``).
* :func:`default_layout` - the layout an array of a given rank is read as, for grid or sensor data.

Every module of this package is imported with it, so a new module that calls
:func:`register_format` adds a file format with no other edit.
"""

from __future__ import annotations

from ...discovery import import_submodules as _import_submodules
from ..core import SpatioTemporalData, to_numpy  # noqa: F401  (importable from here as before)
from .arrays import LAYOUTS, array_reader, default_layout, from_numpy
from .formats import FORMATS, Forecast, Format, file_reader, read_array_file, register_format, write_forecast
from .radar_files import from_radar, radar_importers
from .tables import from_csv, read_adjacency, read_coords
from .video import from_video
from .xarray_io import from_xarray, open_xarray

__all__ = [
    "from_numpy",
    "from_xarray",
    "from_csv",
    "from_video",
    "from_radar",
    "radar_importers",
    "read_array_file",
    "write_forecast",
    "LAYOUTS",
    # the format table and the layout guess
    "register_format",
    "FORMATS",
    "Format",
    "Forecast",
    "file_reader",
    "array_reader",
    "default_layout",
    # helpers
    "open_xarray",
    "read_coords",
    "read_adjacency",
]

# formats added as modules of this package register themselves when imported
_import_submodules(__name__)
