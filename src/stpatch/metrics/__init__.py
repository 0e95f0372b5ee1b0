"""Forecast metrics per lead time, each convention named, usable by name through one registry.

Layouts: grids ``(B, T, C, H, W)``, sensors ``(B, T, N, C)``; dimension 1 is always the lead
time. Every metric takes ``pred`` and ``target`` of the same shape (torch tensors or NumPy
arrays), an optional boolean ``mask`` broadcastable to them (True = valid), and returns a 1-D
tensor of length ``T``: one value per lead time. ``reduce="mean"`` returns the plain mean of
those ``T`` values instead (NaN horizons propagate). Sums run in float64 (float32 on MPS).

==============  ===========  ==================================================================
module          suite        metrics (conventions in each function's docstring)
==============  ===========  ==================================================================
``video``       ``video``    ``mse_per_frame``, ``mae_per_frame`` (sum over a frame, mean over
                             sequences), ``mse_per_pixel``, ``mae_per_pixel``, ``rmse``,
                             ``rmse_per_frame``, ``psnr``, ``ssim``
``sensor``      ``sensor``   ``masked_mae``, ``masked_rmse``, ``masked_mape`` (BasicTS nulls)
``weather``     ``weather``  ``lat_weights``, ``lat_weighted_rmse``, ``lat_weighted_acc``
``radar``       ``precip``   ``contingency_table``, ``csi@{threshold}``, ``pod@{threshold}``,
                             ``far@{threshold}``, ``fss@{threshold}/{scale}px``
==============  ===========  ==================================================================

Evaluation over a test set goes through :class:`MetricAccumulator`, which adds up sufficient
statistics (error sums and counts, contingency tables, per-frame score sums), so its result
equals one pass over the concatenated data. :func:`compute_metrics` is one accumulator update.
Names resolve through :mod:`stpatch.metrics.registry` (:func:`get_metric`, :func:`list_metrics`);
a new metric is one :func:`register_metric` call, see there.

>>> import torch
>>> pred = torch.zeros(1, 2, 1, 2, 2); target = torch.ones(1, 2, 1, 2, 2)
>>> mse_per_frame(pred, target).tolist(), mse_per_pixel(pred, target).tolist()
([4.0, 4.0], [1.0, 1.0])
"""

# isort: off
# the field modules register their metrics on import, in this order (the order of list_metrics())
from .video import mae_per_frame, mae_per_pixel, mse_per_frame, mse_per_pixel, psnr, rmse, rmse_per_frame, ssim
from .sensor import NULL_ATOL, ZERO_ATOL, masked_mae, masked_mape, masked_rmse
from .weather import lat_weighted_acc, lat_weighted_rmse, lat_weights
from .radar import contingency_table, csi, far, fss, pod
# isort: on
from .accumulator import MetricAccumulator, compute_metrics, horizon_table, summarize
from .core import ArrayLike, Reduce, Stats
from .registry import (
    INPUTS,
    METRIC_SUITES,
    Metric,
    MetricInput,
    MetricRef,
    get_metric,
    is_metric,
    list_metrics,
    register_input,
    register_metric,
    register_suite,
    unregister_metric,
)

__all__ = [
    "INPUTS",
    "METRIC_SUITES",
    "NULL_ATOL",
    "ZERO_ATOL",
    "ArrayLike",
    "Metric",
    "MetricAccumulator",
    "MetricInput",
    "MetricRef",
    "Reduce",
    "Stats",
    "compute_metrics",
    "contingency_table",
    "csi",
    "far",
    "fss",
    "get_metric",
    "horizon_table",
    "is_metric",
    "lat_weighted_acc",
    "lat_weighted_rmse",
    "lat_weights",
    "list_metrics",
    "mae_per_frame",
    "mae_per_pixel",
    "masked_mae",
    "masked_mape",
    "masked_rmse",
    "mse_per_frame",
    "mse_per_pixel",
    "pod",
    "psnr",
    "register_input",
    "register_metric",
    "register_suite",
    "rmse",
    "rmse_per_frame",
    "ssim",
    "summarize",
    "unregister_metric",
]

# a metric added as a new module of this package registers itself when imported: no other edit
from ..discovery import import_submodules as _import_submodules  # noqa: E402

_import_submodules(__name__)
