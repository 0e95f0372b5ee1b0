"""Moved: Los-loop lives in :mod:`stpatch.data.sets.traffic`, chickenpox in :mod:`stpatch.data.sets.graph`.

This module re-exports what it used to define, for code that imports it from here.
"""

from __future__ import annotations

from .sets.graph import CHICKENPOX_FILE, load_chickenpox
from .sets.traffic import LOS_FILES, load_los_loop

__all__ = ["LOS_FILES", "CHICKENPOX_FILE", "load_los_loop", "load_chickenpox"]
