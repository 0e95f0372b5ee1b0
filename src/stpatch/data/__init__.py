"""Data sets and adapters for spatio-temporal forecasting.

The public name is ``stpatch.datasets`` (import from there); ``stpatch.data`` is the package that
implements it, and the two hold the same objects.

Canonical layouts: grids ``(T, C, H, W)`` per segment and ``(B, T, C, H, W)`` per batch; sensor
networks ``(T, N, C)`` and ``(B, T, N, C)``.

Named data sets (``list_datasets()``; ``info(name)`` for source, split, shapes and metrics)::

    data = load("los_loop")                   # SpatioTemporalData
    dm = make_datamodule("los_loop", batch_size=32)
    batch = next(iter(dm.train_dataloader())) # {"x", "y", "x_mask", "y_mask", "tod", "dow", "index"}

Your own data::

    from_numpy(array, layout="THW"), from_xarray("field.nc", variables=["t2m"]),
    from_csv("speeds.csv", null_value=0), from_video("clip.gif"), read_array_file(path),
    from_radar("radar/*.h5", importer="odim_hdf5", downsample=4, crop=128)   # mm/h via pysteps
"""

from .adapters import (
    FORMATS,
    LAYOUTS,
    default_layout,
    from_csv,
    from_numpy,
    from_radar,
    from_video,
    from_xarray,
    read_array_file,
    register_format,
    write_forecast,
)
from .core import FIELD_BASELINES, FIELD_METRICS, DatasetInfo, SpatioTemporalData, time_features
from .guard import DataGuardError, DataGuardWarning
from .idx import read_idx
from .module import STDataModule, make_datamodule
from .moving import MovingDigits, MovingDigitsDataset, make_moving_digits
from .radar import block_mean, rainrate
from .registry import dataset_table, download, info, list_datasets, load, register, resolve_data_dir
from .scalers import (
    DBScaler,
    IdentityScaler,
    LogScaler,
    MinMaxScaler,
    Scaler,
    StandardScaler,
    get_scaler,
    scaler_from_state,
)
from .windows import WindowDataset, input_batch, split_ranges

__all__ = [
    # registry
    "load",
    "list_datasets",
    "info",
    "download",
    "register",
    "dataset_table",
    "resolve_data_dir",
    "DatasetInfo",
    "FIELD_METRICS",
    "FIELD_BASELINES",
    # contract
    "SpatioTemporalData",
    "MovingDigits",
    "time_features",
    # the data guard (stpatch.data.guard) and the run's data profile (stpatch.data.profile)
    "DataGuardError",
    "DataGuardWarning",
    # adapters
    "from_numpy",
    "from_xarray",
    "from_csv",
    "from_video",
    "from_radar",
    "read_array_file",
    "write_forecast",
    "read_idx",
    "LAYOUTS",
    "FORMATS",
    "register_format",
    "default_layout",
    # windows, scaling, training
    "split_ranges",
    "input_batch",
    "WindowDataset",
    "MovingDigitsDataset",
    "make_moving_digits",
    "STDataModule",
    "make_datamodule",
    "Scaler",
    "IdentityScaler",
    "StandardScaler",
    "MinMaxScaler",
    "LogScaler",
    "DBScaler",
    "get_scaler",
    "scaler_from_state",
    # radar helpers
    "rainrate",
    "block_mean",
]
