"""stpatch: spatio-temporal forecasting with spacetime patches."""

__version__ = "0.1.0"
