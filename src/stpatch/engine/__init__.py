"""The end-to-end job (Lightning), one module per job.

- ``config``: the run config schema, validated when it is read.
- ``wiring``: config -> data module, and what a checkpoint records of its data.
- ``module``: the LightningModule that trains any registered forecaster.
- ``training``: ``train`` (run directory, checkpoints, resume, budgets).
- ``runs``: ``load_run`` / ``resolve_checkpoint`` (a trained run back in memory).
- ``evaluation``: ``evaluate`` beside the baselines on the same windows.
- ``prediction``: ``predict`` on new data, no ground truth needed.
- ``reports``: text tables of results.
- ``runner``: the older single entry point, re-exporting the public names above.
"""
