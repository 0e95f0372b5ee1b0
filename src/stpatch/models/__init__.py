"""Forecasters behind a registry, timm-style.

>>> from stpatch.models import create_model, list_models
>>> model = create_model("stpnet_tiny", in_channels=1, t_in=4, t_out=3)
>>> model(torch.zeros(1, 4, 1, 30, 45)).shape
torch.Size([1, 3, 1, 30, 45])

Grid models map ``(B, T_in, C, H, W) -> (B, T_out, C, H, W)`` for any ``H, W``; sensor models
``(B, T_in, N, C) -> (B, T_out, N, C)``. ``list_models(kind="sensor")`` lists those that take
sensor networks (the baselines take both). Any learned model takes ``base=`` to stand on a base
forecast (:mod:`stpatch.models.base_forecast`).
"""

import torch  # noqa: F401  (used by the doctest above)

from stpatch.models import extrapolation as _extrapolation  # noqa: F401  (registers "extrapolation"; pysteps loads when built)
from stpatch.models.base_forecast import BasedForecaster, create_based, fit_forecaster
from stpatch.models.baselines import Climatology, LinearAR, Persistence
from stpatch.models.convlstm import ConvLSTM, ConvLSTMCell
from stpatch.models.profile import PeakTensorMemory, count_parameters, flop_counter, profile_model
from stpatch.models.registry import ModelEntry, create_model, get_model_entry, list_models, register_model
from stpatch.models.sensor import STPNetSensor, normalized_adjacency
from stpatch.models.stid import STID
from stpatch.models.stpnet import STPNet

__all__ = [
    "BasedForecaster",
    "Climatology",
    "ConvLSTM",
    "ConvLSTMCell",
    "LinearAR",
    "ModelEntry",
    "PeakTensorMemory",
    "Persistence",
    "STID",
    "STPNet",
    "STPNetSensor",
    "count_parameters",
    "create_based",
    "create_model",
    "fit_forecaster",
    "flop_counter",
    "get_model_entry",
    "list_models",
    "normalized_adjacency",
    "profile_model",
    "register_model",
]

# a model added as a new module of this package registers itself when imported: no other edit
from stpatch.discovery import import_submodules as _import_submodules  # noqa: E402

_import_submodules(__name__)
