"""Surveillance: flag unusual frames of a video from a forecaster's next-frame error, and show where.

Usage (needs a trained run and a clip, so not a doctest)::

    from stpatch import anomaly
    result = anomaly.score("runs/digits", "clip.mp4")
    anomaly.write_outputs(result, "anomaly_clip")   # scores.csv, scores.png, flagged.gif

* :mod:`~stpatch.anomaly.frames`: clips in chunks (video, folder of frames, ``.npy``, arrays);
* :mod:`~stpatch.anomaly.scoring`: PSNR, per-clip regularity score, patch error maps, streaming;
* :mod:`~stpatch.anomaly.threshold`: the alarm threshold calibrated on normal footage, stored with the run;
* :mod:`~stpatch.anomaly.outputs`: the CSV, the score plot and the overlay GIF;
* :mod:`~stpatch.anomaly.inject` and :mod:`~stpatch.anomaly.evaluation`: injected events, ROC-AUC and
  localisation beside the frame-difference and persistence baselines.
"""

from stpatch.anomaly.evaluation import evaluate_injected, roc_auc, write_evaluation
from stpatch.anomaly.inject import EVENTS, inject_event
from stpatch.anomaly.outputs import write_outputs
from stpatch.anomaly.scoring import AnomalyResult, score
from stpatch.anomaly.threshold import calibrated_threshold

__all__ = ["AnomalyResult", "EVENTS", "calibrated_threshold", "evaluate_injected", "inject_event", "roc_auc",
           "score", "write_evaluation", "write_outputs"]
