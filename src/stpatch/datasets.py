"""``stpatch.datasets``: the public face of :mod:`stpatch.data` (registry, adapters, windows, scalers)."""

from stpatch.data import *  # noqa: F403
from stpatch.data import __all__  # noqa: F401
