"""An asyncio micro-batcher: concurrent requests share one model call, behind a bounded queue.

Each request is a stack of windows ``(b, t_in, ...)``; the batcher takes the first waiting request,
then waits at most ``max_wait`` seconds for more, up to ``max_batch`` windows in all, concatenates
the ones with the same shape, calls ``forecast`` once in a worker thread (the event loop keeps
accepting and rejecting requests meanwhile) and hands each request its rows back. The queue holds at
most ``max_queue`` requests: :meth:`MicroBatcher.submit` raises :class:`QueueFull` beyond that (the
service answers 503), so memory never grows without bound. :meth:`MicroBatcher.close` stops taking
requests and finishes every queued one before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MicroBatcher", "QueueFull", "Closed"]


class QueueFull(RuntimeError):
    """The queue is at its bound: try again later (HTTP 503)."""


class Closed(RuntimeError):
    """The batcher is shutting down and takes no new requests (HTTP 503)."""


@dataclass
class _Item:
    inputs: dict[str, np.ndarray]  # "x" (b, t_in, ...), "mask" like x, optionally "tod"/"dow" (b, t_in)
    future: asyncio.Future = field(repr=False)

    @property
    def size(self) -> int:
        return int(self.inputs["x"].shape[0])

    def key(self) -> tuple:
        # requests batch together when every input has the same per-window shape and is present
        return tuple((k, v.shape[1:]) for k, v in sorted(self.inputs.items()) if v is not None)


class MicroBatcher:
    """Batch concurrent ``forecast(x, mask, tod, dow)`` calls.

    Args:
        forecast: ``(x (B, t_in, ...), mask, tod, dow) -> (B, t_out, ...)``, run in a worker thread.
        max_batch: most windows in one call (a bigger single request is one call on its own).
        max_wait: seconds the first request of a batch waits for others.
        max_queue: most requests waiting; :meth:`submit` raises :class:`QueueFull` beyond.
    """

    def __init__(self, forecast: Callable[..., np.ndarray], max_batch: int = 32, max_wait: float = 0.005,
                 max_queue: int = 256):
        self.forecast = forecast
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait)
        self.max_queue = int(max_queue)
        self.queue: asyncio.Queue[_Item] | None = None
        self.task: asyncio.Task | None = None
        self.closing = False
        self.calls = 0  # model calls made, for tests and statistics
        self.windows = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.max_queue)
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def submit(self, x: np.ndarray, mask: np.ndarray, tod: np.ndarray | None = None,
                     dow: np.ndarray | None = None) -> np.ndarray:
        """The forecast of ``x`` ``(b, t_in, ...)``, computed with whatever else is waiting."""
        if self.closing or self.queue is None:
            raise Closed("the service is shutting down")
        item = _Item({"x": x, "mask": mask, "tod": tod, "dow": dow}, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} requests are already waiting") from None
        return await item.future

    async def close(self) -> None:
        """Take no new requests; finish the queued ones; stop."""
        self.closing = True
        if self.queue is not None:
            await self.queue.join()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _loop(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        held: _Item | None = None  # a request that did not fit the last batch starts the next one
        while True:
            first = held or await self.queue.get()
            held = None
            batch, size = [first], first.size
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                timeout = deadline - loop.time()
                try:
                    item = self.queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self.queue.get(), timeout)
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                if item.key() != first.key() or size + item.size > self.max_batch:
                    held = item
                    break
                batch.append(item)
                size += item.size
            await self._run(batch)

    async def _run(self, batch: list[_Item]) -> None:
        assert self.queue is not None
        try:
            merged = {k: None if batch[0].inputs[k] is None else np.concatenate([i.inputs[k] for i in batch])
                      for k in batch[0].inputs}
            out = await asyncio.to_thread(self.forecast, merged["x"], merged["mask"], merged["tod"], merged["dow"])
            self.calls += 1
            self.windows += len(out)
            start = 0
            for item in batch:
                if not item.future.done():
                    item.future.set_result(out[start:start + item.size])
                start += item.size
        except Exception as err:  # one failing call fails its requests, never the loop
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
        finally:
            for _ in batch:
                self.queue.task_done()
