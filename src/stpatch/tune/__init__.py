"""Choosing patch size, width, depth and learning rate for a data set: ``stpatch tune``.

- ``space``: the search space (default, or a YAML file of config keys), validated against the config.
- ``probe``: does a point build and run on the data's shapes; the config's own values of the keys.
- ``pruning``: the Lightning callback that reports validation loss to Optuna and prunes.
- ``trial``: one trial through :func:`stpatch.engine.training.train`, scored on the validation split.
- ``budget``: the wall-clock deadline and whether one more trial fits.
- ``outputs``: trials.csv, best.yaml, the plot of validation loss against patch size, the table.
- ``search``: :func:`tune`, the loop over trials (Optuna, seeded TPE, SQLite storage, resumable).
"""

from stpatch.tune.search import TuneResult, tune

__all__ = ["TuneResult", "tune"]
