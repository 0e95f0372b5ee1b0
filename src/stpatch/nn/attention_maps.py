"""Attention maps: the softmax weights of cuboid attention, how to capture them, and importance.

:class:`AttentionMap` holds the weights of one attention pass; :func:`attention_importance` turns
maps into a per-token map ``(B, nT, nH, nW)``. :func:`capture_attention` (an
:class:`AttentionCapture`) collects the maps of one model's attention layers while a ``with``
block runs.

A capture is scoped, never process-global: it records only the layers of the model it was given
(``None``: any model) and only calls made in the thread that opened it. Open captures live in a
:class:`contextvars.ContextVar`, which every thread (and asyncio task) holds separately, and each
capture also checks that the recording thread is its own. So under a threaded service each
request captures exactly its own model call, even when the same model runs in several threads
at once, and an attention layer with no open capture in its thread takes the fast path.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from stpatch.nn.attention import CuboidLayout

__all__ = ["AttentionCapture", "AttentionMap", "attention_importance", "capture_attention"]


@dataclass
class AttentionMap:
    """Softmax weights of one attention pass.

    Attributes:
        weights: ``(B, heads, M, L, L)``: for cuboid ``m``, query slot ``i`` and key slot ``j``;
            rows of real queries sum to 1 over the keys they may see (padded keys and keys from
            across a rolled border have weight 0). For ``joint``
            attention ``M = 1`` and ``weights[:, :, 0]`` is the full ``(B, heads, N, N)`` matrix
            over the ``N = nT*nH*nW`` tokens in row-major ``(t, h, w)`` order.
        layout: the :class:`~stpatch.nn.CuboidLayout` that maps slots to tokens.
        name: the module's name inside the model, when captured with ``capture_attention(model)``.
    """

    weights: torch.Tensor
    layout: CuboidLayout
    name: str | None = None

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.layout.grid

    def dense(self) -> torch.Tensor:
        """``(B, heads, N, N)`` weights between all ``N = nT*nH*nW`` tokens (zero outside cuboids)."""
        b, h = self.weights.shape[:2]
        n = math.prod(self.grid)
        idx = self.layout.token_index(self.weights.device)
        valid = idx >= 0
        pair = valid[:, :, None] & valid[:, None, :]  # (M, L, L)
        flat = (idx[:, :, None] * n + idx[:, None, :])[pair]
        out = self.weights.new_zeros(b, h, n * n)
        out[:, :, flat] = self.weights[:, :, pair]
        return out.reshape(b, h, n, n)

    def importance(self) -> torch.Tensor:
        """``(B, nT, nH, nW)``: attention each token receives, averaged over heads and over all real queries.

        It sums to 1 over the grid; high values mark tokens many others attend to.
        """
        b = self.weights.shape[0]
        n = math.prod(self.grid)
        idx = self.layout.token_index(self.weights.device)
        valid = idx >= 0
        w = self.weights.mean(1) * valid[None, :, :, None].to(self.weights.dtype)  # drop padded queries
        received = w.sum(-2)  # (B, M, L) summed over queries
        out = received.new_zeros(b, n)
        out.index_add_(1, idx[valid], received[:, valid])
        return out.reshape(b, *self.grid) / n


def attention_importance(maps: AttentionMap | Sequence[AttentionMap]) -> torch.Tensor:
    """Per-token importance ``(B, nT, nH, nW)``: mean attention received, averaged over ``maps``.

    Args:
        maps: one :class:`AttentionMap` or several (e.g. all passes and layers from
            :func:`capture_attention`); all must be on the same token grid.
    """
    if isinstance(maps, AttentionMap):
        return maps.importance()
    maps = list(maps)
    if not maps:
        raise ValueError("attention_importance got no attention maps; run the model inside capture_attention()")
    grids = {m.grid for m in maps}
    if len(grids) > 1:
        raise ValueError(f"attention maps come from token grids of different sizes {sorted(grids)}; pass maps of one grid")
    return torch.stack([m.importance() for m in maps]).mean(0)


# --------------------------------------------------------------------------- capture

# The captures open in the current thread (or asyncio task), innermost last. A ContextVar, not a
# global: another thread never sees this thread's captures.
_OPEN: ContextVar[tuple[AttentionCapture, ...]] = ContextVar("stpatch_attention_captures", default=())
# How many captures are open in all threads together: only a first, cheap test, so that layers skip
# the ContextVar when nothing is captured anywhere (torch.compile guards on this int, where it
# cannot trace ContextVar.get). Which captures record a call is decided by _OPEN alone.
_open_anywhere = 0
_count_lock = threading.Lock()


def _count_open(step: int) -> None:
    global _open_anywhere
    with _count_lock:
        _open_anywhere += step


class AttentionCapture:
    """Records the attention maps of one model's layers, in the thread that opened it.

    Use it as a context manager (or through :func:`capture_attention`); ``__enter__`` returns the
    list that fills with :class:`AttentionMap` records, in the order the passes ran.

    Args:
        model: record only attention layers inside this module (each record gets the layer's
            name in it); ``None`` records every attention layer run in this thread.
        detach: store weights detached from the autograd graph (default).

    Only calls made in the opening thread are recorded, so captures in different threads never
    mix, even on one shared model. Captures may nest; every open capture that covers a layer
    records it. One object captures one ``with`` block at a time (re-entering an open one is an
    error); entering it again later starts a new list.
    """

    def __init__(self, model: nn.Module | None = None, detach: bool = True) -> None:
        self.model = model
        self.detach = detach
        self.maps: list[AttentionMap] = []
        self._layers: dict[int, tuple[str, nn.Module]] | None = None
        self._thread: int | None = None
        self._token: Token | None = None

    def __enter__(self) -> list[AttentionMap]:
        if self._token is not None:
            raise RuntimeError("this AttentionCapture is already open; make a new one to capture again inside it")
        self.maps = []
        # the modules are kept beside their ids so that a reused id can never match a stranger
        self._layers = None if self.model is None else {id(m): (n, m) for n, m in self.model.named_modules()}
        self._thread = threading.get_ident()
        self._token = _OPEN.set((*_OPEN.get(), self))
        _count_open(+1)
        return self.maps

    def __exit__(self, *exc: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _count_open(-1)
            _OPEN.reset(token)

    def covers(self, layer: nn.Module) -> bool:
        """Whether a call of ``layer`` in the current thread is recorded here."""
        if self._thread != threading.get_ident():
            return False
        if self._layers is None:
            return True
        entry = self._layers.get(id(layer))
        return entry is not None and entry[1] is layer

    def record(self, layer: nn.Module, amap: AttentionMap) -> None:
        """Append ``amap`` (computed by ``layer``) under the layer's name in the model."""
        weights = amap.weights.detach() if self.detach else amap.weights
        name = None if self._layers is None else self._layers[id(layer)][0]
        self.maps.append(AttentionMap(weights, amap.layout, name))


def captures_for(layer: nn.Module) -> tuple[AttentionCapture, ...]:
    """The captures open in this thread that record ``layer`` (empty, and cheap, when none is open)."""
    if not _open_anywhere:
        return ()
    open_ = _OPEN.get()
    if not open_:
        return ()
    return tuple(c for c in open_ if c.covers(layer))


def capture_attention(model: nn.Module | None = None, detach: bool = True) -> AttentionCapture:
    """Collect the attention weights of ``model``'s attention passes run inside the ``with`` block.

    Args:
        model: record only the attention layers of this model, each record named after its
            module inside ``model``; ``None`` records every attention layer (of any model).
        detach: store weights detached from the autograd graph (default).

    Either way only calls in the thread that opened the capture are recorded (see
    :class:`AttentionCapture`), so concurrent requests in other threads never leak in.

    Returns:
        An :class:`AttentionCapture`; ``with`` gives the list that fills with
        :class:`AttentionMap` records, in the order the passes ran.

    >>> from stpatch.nn import SpacetimeAttention
    >>> attn = SpacetimeAttention(8, heads=2, mode="divided")
    >>> with capture_attention(attn) as maps:
    ...     _ = attn(torch.zeros(1, 2, 3, 3, 8))
    >>> [(m.name, tuple(m.weights.shape)) for m in maps]
    [('passes.0', (1, 2, 9, 2, 2)), ('passes.1', (1, 2, 2, 9, 9))]
    """
    return AttentionCapture(model, detach)
