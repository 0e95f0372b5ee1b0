"""Moved: the built-in registry entries live in the family modules of :mod:`stpatch.data.sets`.

The registry finds them itself (:func:`stpatch.data.registry.discover`); importing this module still
registers them and re-exports the entries it used to define.
"""

from __future__ import annotations

from .registry import discover
from .sets.graph import CHICKENPOX
from .sets.moving import DIGITS, MOVING_MNIST
from .sets.radar import RADAR_FMI, RADAR_MCH
from .sets.traffic import LOS_LOOP
from .sets.weather import ERA5

__all__ = ["MOVING_MNIST", "DIGITS", "RADAR_MCH", "RADAR_FMI", "ERA5", "LOS_LOOP", "CHICKENPOX"]

discover()
