"""Scalers fitted on the training split only, for numpy arrays and torch tensors alike.

Every scaler works along a **channel axis counted from the end** (``-3`` for grids
``(..., C, H, W)``, ``-1`` for sensors ``(..., N, C)``), so the same fitted scaler applies to a
segment ``(T, C, H, W)``, a window, or a batch ``(B, T, C, H, W)``.

``fit(data, mask=None, null_value=None)`` ignores NaN, masked-out values (mask False) and
values equal to ``null_value``; ``data`` may be one array or a list of arrays (numpy or dask),
read in chunks of time steps so that lazy data are streamed.

``state_dict()`` returns plain Python (lists, floats, strings) that can be stored in a
checkpoint or JSON; :func:`scaler_from_state` rebuilds the fitted scaler.

Why one module of ~450 lines: the five scalers share the chunked statistics, the state format and the
name table that ``get_scaler``/``scaler_from_state`` read; each class is short, and splitting them would
scatter one state format over several files.

>>> import numpy as np
>>> x = np.arange(24, dtype=np.float64).reshape(3, 2, 2, 2)   # (T, C, H, W)
>>> s = StandardScaler(channel_axis=-3).fit(x)
>>> bool(np.allclose(s.inverse_transform(s.transform(x)), x))
True
>>> s2 = scaler_from_state(s.state_dict())
>>> bool(np.allclose(s2.transform(x), s.transform(x)))
True
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .streaming import read_blocks

__all__ = [
    "Scaler",
    "IdentityScaler",
    "StandardScaler",
    "MinMaxScaler",
    "LogScaler",
    "DBScaler",
    "SCALERS",
    "get_scaler",
    "scaler_from_state",
]

def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _as_float(x):
    if _is_torch(x):
        return x if x.is_floating_point() else x.float()
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def _iter_chunks(data, mask=None, null_value=None) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(values, valid)`` float64 numpy blocks along axis 0 of each array in ``data``."""
    arrays = data if isinstance(data, list | tuple) else [data]
    if mask is None or not isinstance(mask, list | tuple):
        masks = [mask] * len(arrays)
    else:
        masks = list(mask)
    if len(masks) != len(arrays):
        raise ValueError(f"scaler.fit: {len(arrays)} arrays but {len(masks)} masks")
    for arr, m in zip(arrays, masks, strict=True):
        for _, _, x, valid in read_blocks(arr, m, null_value, dtype=np.float64):
            yield x, valid


class Scaler:
    """Base class. Subclasses implement ``_fit_stats``, ``_forward`` and ``_backward``."""

    name = "base"

    def __init__(self, channel_axis: int = -3, per_channel: bool = True):
        if channel_axis >= 0:
            raise ValueError(f"channel_axis is counted from the end and must be negative, got {channel_axis}")
        self.channel_axis = int(channel_axis)
        self.per_channel = bool(per_channel)
        self.params: dict[str, np.ndarray] = {}
        self.fitted = False

    # ---------------------------------------------------------------- helpers
    def _flat(self, x: np.ndarray) -> np.ndarray:
        """``(..., C, ...)`` -> ``(M, C)`` (or ``(M, 1)`` when not per channel)."""
        if not self.per_channel:
            return x.reshape(-1, 1)
        c = x.shape[self.channel_axis]
        return np.moveaxis(x, self.channel_axis, -1).reshape(-1, c)

    def _p(self, key: str, x):
        """Parameter ``key`` shaped to broadcast against ``x`` along the channel axis."""
        p = self.params[key]
        shape = [1] * (-self.channel_axis)
        shape[0] = p.size
        if x.ndim < len(shape):
            raise ValueError(
                f"{type(self).__name__}: input with {x.ndim} dims has no channel axis {self.channel_axis}"
            )
        c = x.shape[self.channel_axis]
        if p.size not in (1, c):
            raise ValueError(f"{type(self).__name__} was fitted on {p.size} channels, got input with {c}")
        p = p.reshape(shape)
        if _is_torch(x):
            import torch

            return torch.as_tensor(p, dtype=x.dtype, device=x.device)
        return p.astype(x.dtype, copy=False)

    def _check(self):
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() on the training split first")

    # ---------------------------------------------------------------- API
    def fit(self, data, mask=None, null_value=None) -> Scaler:
        """Fit on ``data`` (array or list of arrays), ignoring NaN, ``mask == False`` and ``null_value``.

        One streaming pass: lazy (dask) arrays are read block by block (:mod:`stpatch.data.streaming`),
        so the statistics of a store larger than memory need one block in memory at a time."""
        return self.fit_blocks(_iter_chunks(data, mask, null_value))

    def fit_blocks(self, blocks: Iterable[tuple[np.ndarray, np.ndarray]]) -> Scaler:
        """Fit from ``(values, valid)`` blocks (float arrays along time and their bool validity), for
        passes that compute other things from the same blocks (the DataModule's observed steps)."""
        self._fit_stats(iter(blocks))
        self.fitted = True
        return self

    def transform(self, x):
        """Scale ``x`` (numpy array or torch tensor); NaN stays NaN."""
        self._check()
        return self._forward(_as_float(x))

    def inverse_transform(self, x):
        """Undo :meth:`transform` (numpy array or torch tensor)."""
        self._check()
        return self._backward(_as_float(x))

    def fit_transform(self, x, mask=None, null_value=None):
        return self.fit(x, mask, null_value).transform(x)

    def options(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        """Plain-Python state (type, options, fitted parameters) for checkpoints."""
        return {
            "type": type(self).__name__,
            "channel_axis": self.channel_axis,
            "per_channel": self.per_channel,
            "options": self.options(),
            "params": {k: np.asarray(v, dtype=np.float64).ravel().tolist() for k, v in self.params.items()},
            "fitted": self.fitted,
        }

    def load_state_dict(self, state: dict) -> Scaler:
        self.channel_axis = int(state["channel_axis"])
        self.per_channel = bool(state.get("per_channel", True))
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in state.get("params", {}).items()}
        self.fitted = bool(state.get("fitted", True))
        return self

    def _fit_stats(self, chunks) -> None:  # pragma: no cover - overridden
        for _ in chunks:
            pass

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={np.round(v, 4).tolist()}" for k, v in self.params.items())
        return f"{type(self).__name__}(channel_axis={self.channel_axis}{', ' + ps if ps else ''})"


class IdentityScaler(Scaler):
    """Leaves values unchanged (data already in a sensible range, e.g. images in [0, 1])."""

    name = "identity"

    def fit(self, data=None, mask=None, null_value=None) -> IdentityScaler:
        self.fitted = True
        return self

    def _forward(self, x):
        return x

    def _backward(self, x):
        return x


class _MomentsMixin:
    """Streaming per-channel mean/std (shifted sums in float64)."""

    def _moments(self, chunks, transform=None):
        n = s1 = s2 = shift = None
        for x, valid in chunks:
            if transform is not None:
                x = transform(x)
                valid = valid & np.isfinite(x)
            xf, vf = self._flat(x), self._flat(valid)
            if n is None:
                c = xf.shape[1]
                n, s1, s2 = np.zeros(c), np.zeros(c), np.zeros(c)
                cnt = vf.sum(0)
                shift = np.where(cnt > 0, np.where(vf, xf, 0).sum(0) / np.maximum(cnt, 1), 0.0)
            d = xf - shift  # one temporary the size of the block; the rest is done in place
            d[~vf] = 0.0
            n += vf.sum(0)
            s1 += d.sum(0)
            s2 += np.einsum("ij,ij->j", d, d)
        if n is None or np.any(n == 0):
            raise ValueError(
                f"{type(self).__name__}.fit: no observed (finite, unmasked) values"
                + ("" if n is None else f" in channel(s) {np.flatnonzero(n == 0).tolist()}")
                + " in the training split"
            )
        mean = shift + s1 / n
        var = np.maximum(s2 / n - (s1 / n) ** 2, 0.0)
        return mean, np.sqrt(var)


class StandardScaler(_MomentsMixin, Scaler):
    """``(x - mean) / std`` per channel (a zero std is replaced by 1)."""

    name = "standard"

    def __init__(self, channel_axis: int = -3, per_channel: bool = True, eps: float = 1e-8):
        super().__init__(channel_axis, per_channel)
        self.eps = float(eps)

    def options(self):
        return {"eps": self.eps}

    def _fit_stats(self, chunks):
        mean, std = self._moments(chunks)
        self.params = {"mean": mean, "std": np.where(std > self.eps, std, 1.0)}

    def _forward(self, x):
        return (x - self._p("mean", x)) / self._p("std", x)

    def _backward(self, x):
        return x * self._p("std", x) + self._p("mean", x)


class MinMaxScaler(Scaler):
    """Map ``[min, max]`` of the training split to ``feature_range`` per channel."""

    name = "minmax"

    def __init__(self, channel_axis: int = -3, per_channel: bool = True, feature_range=(0.0, 1.0)):
        super().__init__(channel_axis, per_channel)
        self.feature_range = (float(feature_range[0]), float(feature_range[1]))

    def options(self):
        return {"feature_range": list(self.feature_range)}

    def _fit_stats(self, chunks):
        lo = hi = None
        for x, valid in chunks:
            xf, vf = self._flat(x), self._flat(valid)
            cmin = np.where(vf, xf, np.inf).min(0)
            cmax = np.where(vf, xf, -np.inf).max(0)
            lo = cmin if lo is None else np.minimum(lo, cmin)
            hi = cmax if hi is None else np.maximum(hi, cmax)
        if lo is None or not np.all(np.isfinite(lo)):
            raise ValueError("MinMaxScaler.fit: no observed (finite, unmasked) values in the training split")
        span = np.where(hi > lo, hi - lo, 1.0)
        a, b = self.feature_range
        self.params = {"min": lo, "scale": (b - a) / span, "offset": np.full_like(lo, a)}

    def _forward(self, x):
        return (x - self._p("min", x)) * self._p("scale", x) + self._p("offset", x)

    def _backward(self, x):
        return (x - self._p("offset", x)) / self._p("scale", x) + self._p("min", x)


class _TransformThenStandardize(_MomentsMixin):
    """A pointwise transform into other units (``_to_units`` / ``_from_units``), then optional
    standardisation with moments of the transformed training data."""

    def _fit_stats(self, chunks):
        if self.standardize:
            mean, std = self._moments(chunks, transform=self._to_units)
            self.params = {"mean": mean, "std": np.where(std > 1e-8, std, 1.0)}
        else:
            for _ in chunks:
                break
            self.params = {}

    def _forward(self, x):
        y = self._to_units(x)
        if self.standardize:
            y = (y - self._p("mean", y)) / self._p("std", y)
        return y

    def _backward(self, y):
        if self.standardize:
            y = y * self._p("std", y) + self._p("mean", y)
        return self._from_units(y)


class LogScaler(_TransformThenStandardize, Scaler):
    """``log(x + offset)`` (``log1p`` for offset 1), optionally standardised afterwards.

    For non-negative, heavy-tailed values such as rain rates or counts.
    """

    name = "log"

    def __init__(
        self, channel_axis: int = -3, per_channel: bool = True, offset: float = 1.0, standardize: bool = False
    ):
        super().__init__(channel_axis, per_channel)
        self.offset = float(offset)
        self.standardize = bool(standardize)

    def options(self):
        return {"offset": self.offset, "standardize": self.standardize}

    def _log(self, x):
        if _is_torch(x):
            import torch

            return torch.log(x + self.offset)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x + self.offset)

    def _exp(self, y):
        if _is_torch(y):
            import torch

            return torch.exp(y) - self.offset
        return np.exp(y) - self.offset

    def _to_units(self, x):
        return self._log(x)

    def _from_units(self, y):
        return self._exp(y)


class DBScaler(_TransformThenStandardize, Scaler):
    """Rain rate ``R`` (mm/h) to decibels, as pysteps' ``dB_transform``: ``10 log10(R)`` where
    ``R >= threshold``, else ``zerovalue`` (default ``10 log10(threshold) - 5``); optionally
    standardised afterwards (default True, fitted on the training split).

    The inverse maps back to mm/h and sets values below ``threshold`` to 0, so it is exact for
    zeros and for rates at or above the threshold (rates in ``(0, threshold)`` become 0).
    """

    name = "db"

    def __init__(
        self,
        channel_axis: int = -3,
        per_channel: bool = True,
        threshold: float = 0.1,
        zerovalue: float | None = None,
        standardize: bool = True,
    ):
        super().__init__(channel_axis, per_channel)
        self.threshold = float(threshold)
        self.zerovalue = float(10.0 * np.log10(threshold) - 5.0 if zerovalue is None else zerovalue)
        self.standardize = bool(standardize)

    def options(self):
        return {"threshold": self.threshold, "zerovalue": self.zerovalue, "standardize": self.standardize}

    def _db(self, x):
        if _is_torch(x):
            import torch

            safe = torch.clamp(x, min=self.threshold)
            y = 10.0 * torch.log10(safe)
            return torch.where(x >= self.threshold, y, torch.full_like(y, self.zerovalue)).where(
                ~torch.isnan(x), x
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            y = 10.0 * np.log10(np.maximum(x, self.threshold))
        y = np.where(x >= self.threshold, y, self.zerovalue).astype(x.dtype, copy=False)
        return np.where(np.isnan(x), x, y)

    def _undb(self, y):
        if _is_torch(y):
            import torch

            r = torch.pow(10.0, y / 10.0)
            return torch.where((r >= self.threshold * (1 - 1e-6)) | torch.isnan(r), r, torch.zeros_like(r))
        r = np.power(10.0, y / 10.0).astype(y.dtype, copy=False)
        return np.where((r >= self.threshold * (1 - 1e-6)) | np.isnan(r), r, 0.0).astype(y.dtype, copy=False)

    def _to_units(self, x):
        return self._db(x)

    def _from_units(self, y):
        return self._undb(y)


SCALERS: dict[str, type[Scaler]] = {
    "identity": IdentityScaler,
    "none": IdentityScaler,
    "standard": StandardScaler,
    "minmax": MinMaxScaler,
    "log": LogScaler,
    "db": DBScaler,
    "dbr": DBScaler,
}


def get_scaler(scaler, channel_axis: int = -3, **kwargs) -> Scaler:
    """A scaler from a name (``"standard"``, ``"minmax"``, ``"log"``, ``"db"``, ``"identity"``),
    a scaler instance (returned as is) or ``None`` (identity)."""
    if scaler is None:
        return IdentityScaler(channel_axis)
    if isinstance(scaler, Scaler):
        return scaler
    key = str(scaler).lower()
    if key not in SCALERS:
        raise ValueError(
            f"unknown scaler {scaler!r}; expected one of {sorted(set(SCALERS))} or a Scaler instance"
        )
    return SCALERS[key](channel_axis=channel_axis, **kwargs)


_BY_CLASS = {cls.__name__: cls for cls in set(SCALERS.values())}


def scaler_from_state(state: dict) -> Scaler:
    """Rebuild a fitted scaler from :meth:`Scaler.state_dict` output."""
    if not isinstance(state, dict) or "type" not in state:
        raise ValueError(
            f"scaler_from_state expects a dict from Scaler.state_dict(), got {type(state).__name__}"
        )
    cls = _BY_CLASS.get(state["type"])
    if cls is None:
        raise ValueError(f"unknown scaler type {state['type']!r}; expected one of {sorted(_BY_CLASS)}")
    opts = dict(state.get("options", {}))
    if "feature_range" in opts:
        opts["feature_range"] = tuple(opts["feature_range"])
    obj = cls(
        channel_axis=int(state["channel_axis"]), per_channel=bool(state.get("per_channel", True)), **opts
    )
    return obj.load_state_dict(state)
