"""Compatibility module: the end-to-end jobs now live in one module each.

===================================================  ===========================================
name                                                 now in
===================================================  ===========================================
``train``, ``TrainResult``                           :mod:`stpatch.engine.training`
``evaluate``                                         :mod:`stpatch.engine.evaluation`
``predict``                                          :mod:`stpatch.engine.prediction`
``load_run``, ``resolve_checkpoint``, ``LoadedRun``  :mod:`stpatch.engine.runs`
``format_eval_table``                                :mod:`stpatch.engine.reports`
``make_data``, ``data_meta``, ``resolve_config``     :mod:`stpatch.engine.wiring`
===================================================  ===========================================

``from stpatch.engine.runner import train, evaluate, predict`` keeps working; new code imports from
the modules above (or uses ``stpatch.train`` / ``stpatch.evaluate`` / ``stpatch.predict``).
"""

from __future__ import annotations

from stpatch.engine.evaluation import evaluate
from stpatch.engine.prediction import predict
from stpatch.engine.reports import format_eval_table
from stpatch.engine.runs import LoadedRun, load_run, resolve_checkpoint
from stpatch.engine.training import TrainResult, train
from stpatch.engine.wiring import data_meta, make_data, resolve_config

__all__ = [
    "LoadedRun", "TrainResult", "data_meta", "evaluate", "format_eval_table", "load_run", "make_data",
    "predict", "resolve_checkpoint", "resolve_config", "train",
]
