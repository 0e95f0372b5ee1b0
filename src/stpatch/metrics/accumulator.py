"""Evaluation over batches by metric name: :class:`MetricAccumulator`, :func:`compute_metrics`, tables.

Names resolve through :mod:`stpatch.metrics.registry` only; the accumulator adds up each
metric's sufficient statistics (error sums and counts, contingency tables, per-frame score sums),
so its result equals one pass over the concatenated data.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .core import ArrayLike, Stats, prepare
from .registry import INPUTS, METRIC_SUITES, MetricRef, get_metric

__all__ = ["MetricAccumulator", "compute_metrics", "horizon_table", "summarize"]


def _build_terms(suite: str | Sequence[str], grid: Mapping[str, Any], given: Mapping[str, Any]) -> list[MetricRef]:
    """Resolve a suite or list of names into complete metrics; named suites leave out the metrics
    whose per-update inputs (a climatology) were not given at construction, with a warning."""
    if isinstance(suite, str):
        if suite not in METRIC_SUITES:
            raise ValueError(f"unknown metric suite {suite!r}; known: {sorted(METRIC_SUITES)}")
        refs = [get_metric(name) for name in METRIC_SUITES[suite]]
        for key, spec in INPUTS.items():
            left_out = [r.name for r in refs if key in r.metric.inputs and spec.per_update and given.get(key) is None]
            if left_out:
                warnings.warn(f"{suite} suite without a {key}: {', '.join(left_out)} "
                              f"{'is' if len(left_out) == 1 else 'are'} left out", stacklevel=3)
                refs = [r for r in refs if r.name not in left_out]
    else:
        refs = [get_metric(name) for name in suite]
    values = {key: np.atleast_1d(np.asarray(v)).tolist() for key, v in grid.items()}
    terms = [term for ref in refs for term in ref.expand(values)]
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
        raise ValueError(f"metric names repeat: {names}")
    return terms


class MetricAccumulator:
    """Accumulate a metric suite over batches; :meth:`compute` equals one pass over all of them.

    Sums of errors and counts, contingency tables, FSS sums and per-frame PSNR/SSIM sums are
    added up per lead time, so batch sizes and order do not matter.

    Args:
        suite: a name in :data:`METRIC_SUITES` or a list of metric names (``"csi@2.5"``,
            ``"fss@1.0/4px"`` are accepted too); see :func:`list_metrics`.
        lat: latitudes ``(H,)`` in degrees, for the weather metrics.
        climatology: broadcastable to the target; can also be given per :meth:`update`. The
            ``"weather"`` suite without one leaves out ``lat_weighted_acc`` (with a warning).
        thresholds, fss_scale: the values a bare ``"csi"``/``"pod"``/``"far"``/``"fss"`` expands
            to (the ``threshold`` and ``scale`` parameters); FSS windows are in pixels.
        data_range: of the data, for PSNR and SSIM.
        null_value: missing-value marker of sensor targets (NaN/None: only NaN is missing).
        per_channel: also report weather metrics per channel (``"name/ch{i}"``) when ``C > 1``.

    Two batches, ``(B, T, C, H, W)``: 2 windows off by 1 everywhere, then 1 exact window. The
    result pools the windows, as one pass over all 3 would (16 pixels a frame):

    >>> import torch
    >>> acc = MetricAccumulator(["mse_per_frame", "mae_per_pixel"])
    >>> acc.update(torch.zeros(2, 3, 1, 4, 4), torch.ones(2, 3, 1, 4, 4))
    >>> acc.update(torch.ones(1, 3, 1, 4, 4), torch.ones(1, 3, 1, 4, 4))
    >>> per_horizon = acc.compute()  # one value per lead time
    >>> [round(v, 4) for v in per_horizon["mse_per_frame"]], [round(v, 4) for v in per_horizon["mae_per_pixel"]]
    ([10.6667, 10.6667, 10.6667], [0.6667, 0.6667, 0.6667])
    """

    def __init__(self, suite: str | Sequence[str], *, lat: ArrayLike | Sequence[float] | None = None,
                 climatology: ArrayLike | None = None, thresholds: Sequence[float] = (1.0, 5.0),
                 fss_scale: int | Sequence[int] = 8, data_range: float = 1.0,
                 null_value: float | None = 0.0, per_channel: bool = True) -> None:
        self.suite = suite
        self.climatology = climatology
        self.per_channel = per_channel
        given = {"lat": lat, "climatology": climatology, "data_range": data_range, "null_value": null_value}
        self.terms = _build_terms(suite, {"threshold": thresholds, "scale": fss_scale}, given)
        # inputs given once are prepared (and checked) once; per-update ones at each update
        self._inputs = {key: value if value is None or INPUTS[key].prepare is None else INPUTS[key].prepare(value)
                        for key, value in given.items() if not INPUTS[key].per_update}
        for term in self.terms:
            for key in term.metric.inputs:
                spec = INPUTS[key]
                if self._inputs.get(key) is None and not (spec.optional or spec.per_update):
                    raise ValueError(f"{term.name} needs {key} ({spec.doc})")
        self.reset()

    @property
    def names(self) -> list[str]:
        """Metric names (before per-channel expansion)."""
        return [t.name for t in self.terms]

    def reset(self) -> None:
        self._sums: dict[str, Stats] = {}
        self.num_batches = 0
        self.num_sequences = 0

    def update(self, pred: ArrayLike, target: ArrayLike, *, mask: ArrayLike | None = None,
               climatology: ArrayLike | None = None) -> None:
        """Add one batch ``(B, T, ...)``; ``climatology`` overrides the one given at construction."""
        p, t, m = prepare(pred, target, mask)
        inputs = dict(self._inputs)
        given = {"climatology": climatology if climatology is not None else self.climatology}
        for key, value in given.items():
            users = [term.name for term in self.terms if key in term.metric.inputs]
            if not users:
                continue
            if value is None:
                raise ValueError(f"{', '.join(users)} needs a {key} (at construction or per update)")
            inputs[key] = INPUTS[key].prepare(value, t)
        for term in self.terms:
            new = term.stats(p, t, m, inputs)
            old = self._sums.get(term.name)
            if old is None:
                self._sums[term.name] = new
                continue
            for key, value in new.items():
                if value.shape != old[key].shape:
                    raise ValueError(f"{term.name}: batch gives statistics of shape {tuple(value.shape)}, "
                                     f"earlier batches {tuple(old[key].shape)} (lead times or channels differ)")
            self._sums[term.name] = term.metric.merge(old, {k: v.to(old[k].device) for k, v in new.items()})
        self.num_batches += 1
        self.num_sequences += p.shape[0]

    def compute(self) -> dict[str, list[float]]:
        """``{metric name: [value per lead time]}``; ``(T, C)`` metrics (weather) are channel means."""
        if not self._sums:
            raise ValueError("MetricAccumulator.compute() before any update()")
        out: dict[str, list[float]] = {}
        for term in self.terms:
            values = term.finalize(self._sums[term.name]).detach().cpu()
            if values.ndim == 2:  # (T, C)
                out[term.name] = values.mean(dim=1).tolist()
                if self.per_channel and values.shape[1] > 1:
                    for ch in range(values.shape[1]):
                        out[f"{term.name}/ch{ch}"] = values[:, ch].tolist()
            else:
                out[term.name] = values.tolist()
        return out


def compute_metrics(pred: ArrayLike, target: ArrayLike, suite: str | Sequence[str], *,
                    mask: ArrayLike | None = None, lat: ArrayLike | Sequence[float] | None = None,
                    climatology: ArrayLike | None = None, thresholds: Sequence[float] = (1.0, 5.0),
                    fss_scale: int | Sequence[int] = 8, data_range: float = 1.0,
                    null_value: float | None = 0.0, per_channel: bool = True) -> dict[str, list[float]]:
    """One-batch :class:`MetricAccumulator`: ``{name: [value per lead time]}``.

    Names: ``"mse_per_frame"``, ``"ssim"``, ``"masked_mae"``, ``"csi@1.0"``, ``"fss@1.0/8px"``, ...
    """
    acc = MetricAccumulator(suite, lat=lat, climatology=climatology, thresholds=thresholds,
                            fss_scale=fss_scale, data_range=data_range, null_value=null_value,
                            per_channel=per_channel)
    acc.update(pred, target, mask=mask)
    return acc.compute()


def summarize(per_horizon: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Mean over lead times of each metric (NaN if any lead time is NaN)."""
    return {name: float(np.mean(np.asarray(values, dtype=np.float64))) for name, values in per_horizon.items()}


def horizon_table(per_horizon: Mapping[str, Sequence[float]], horizons: Sequence[int] | None = None,
                  step_minutes: float | None = None, *, include_mean: bool = False) -> list[dict]:
    """Rows ``{"horizon": h, ["minutes": h * step_minutes,] metric: value, ...}`` for a table.

    ``horizons`` are 1-based lead indices (``[3, 6, 12]`` = 15/30/60 min at 5-minute steps);
    default all. ``include_mean`` appends a row with ``horizon="mean"`` (mean over ALL lead times).
    """
    lengths = {len(v) for v in per_horizon.values()}
    if len(lengths) > 1:
        raise ValueError(f"metrics have different numbers of lead times: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    chosen = list(range(1, n + 1)) if horizons is None else [int(h) for h in horizons]
    bad = [h for h in chosen if not 1 <= h <= n]
    if bad:
        raise ValueError(f"horizons {bad} outside 1..{n} (1-based lead indices)")
    rows: list[dict] = []
    for h in chosen:
        row: dict = {"horizon": h}
        if step_minutes is not None:
            row["minutes"] = h * step_minutes
        row.update({name: float(values[h - 1]) for name, values in per_horizon.items()})
        rows.append(row)
    if include_mean:
        row = {"horizon": "mean"}
        if step_minutes is not None:
            row["minutes"] = None
        row.update(summarize(per_horizon))
        rows.append(row)
    return rows
