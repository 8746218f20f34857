"""Dynamic batching: concurrent requests for one model are decoded together, fairly.

Texts wait in a bounded queue. A worker takes the oldest text and, with the same
search options, texts of the waiting requests in turn (one from each request, round
after round), up to a number of sentences and a decoding cost, waiting at most
``max_wait_ms`` after the oldest text arrived for the batch to fill. Taking requests in
turn means that a request of many long texts never makes a one-sentence request that
arrives after it wait for more than one batch; the cost bound keeps each batch short.

Decoding runs in a single worker thread per model, off the event loop. A batch that
fails is decoded again text by text, so that only the text at fault gets the error;
the worker itself outlives any exception and records when it last made progress, for
the liveness probe.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Source = TypeVar("Source")
Options = TypeVar("Options")
Result = TypeVar("Result")

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The model's queue cannot take the texts of this request now."""


class DeadlineExceeded(Exception):
    """The request's texts were not decoded within its deadline (and left the queue)."""


@dataclass(frozen=True)
class BatchInfo:
    """What happened to the batch a text was decoded in."""

    size: int  # texts in the batch
    wait_ms: float  # this text's time in the queue
    decode_ms: float  # the batch's decoding time


@dataclass
class _Item(Generic[Source, Options, Result]):
    source: Source
    cost: int
    options: Options
    request: int  # which submit() call the text came with
    arrived: float
    future: asyncio.Future[tuple[Result, BatchInfo]] = field(repr=False)


class Batcher(Generic[Source, Options, Result]):
    """Queue and worker for one model.

    Args:
        decode: sources, options -> one result per source, in order; runs in a thread.
        cost: the decoding work of one source under the options (e.g. subwords x beam),
            for the batch's cost bound.
        on_batch: called after each batch with (texts, total cost, decode seconds).
    """

    def __init__(
        self,
        decode: Callable[[list[Source], Options], list[Result]],
        cost: Callable[[Source, Options], int],
        *,
        max_sentences: int,
        max_cost: int,
        max_wait_ms: float,
        queue_size: int,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._decode = decode
        self._cost = cost
        self.max_sentences = max_sentences
        self.max_cost = max_cost
        self.max_wait = max_wait_ms / 1000
        self.queue_size = queue_size
        self._on_batch = on_batch
        self._pending: deque[_Item[Source, Options, Result]] = deque()
        self._arrival = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self._worker: asyncio.Task[None] | None = None
        self._requests = itertools.count()
        self._busy_since: float | None = None  # when the batch being decoded started

    @property
    def depth(self) -> int:
        """Texts waiting to be decoded."""
        return len(self._pending)

    def stalled_for(self) -> float:
        """Seconds the worker has been stuck: decoding one batch, or dead with texts
        waiting; 0 while it makes progress or has nothing to do."""
        if self._worker is not None and self._worker.done():
            return float("inf") if self._pending else 0.0
        if self._busy_since is None:
            return 0.0
        return time.monotonic() - self._busy_since

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for item in self._pending:
            item.future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(
        self, sources: list[Source], options: Options, timeout: float | None = None
    ) -> list[tuple[Result, BatchInfo]]:
        """Queue ``sources`` and wait for their results (in order).

        Raises:
            QueueFull: the queue has no room for all of ``sources``.
            DeadlineExceeded: not done within ``timeout`` seconds; the texts not yet
                decoded have left the queue.
        """
        if len(self._pending) + len(sources) > self.queue_size:
            raise QueueFull(f"{len(self._pending)} texts are already waiting")
        loop = asyncio.get_running_loop()
        now, request = time.monotonic(), next(self._requests)
        items = [
            _Item(s, self._cost(s, options), options, request, now, loop.create_future())
            for s in sources
        ]
        self._pending.extend(items)
        self._arrival.set()
        try:
            async with asyncio.timeout(timeout):
                return list(await asyncio.gather(*(item.future for item in items)))
        except TimeoutError as err:
            raise DeadlineExceeded(f"not decoded within {timeout:g} s") from err
        finally:
            # a client that left or timed out: its texts need not be decoded
            for item in items:
                item.future.cancel()

    # ------------------------------------------------------------------ worker
    def _batch_of(
        self, first: _Item[Source, Options, Result]
    ) -> list[_Item[Source, Options, Result]]:
        """Texts with the options of ``first``, one per request in turn, within the limits.

        ``first`` is always taken, even alone over the cost bound.
        """
        turns: dict[int, deque[_Item[Source, Options, Result]]] = {}
        for item in self._pending:
            if not item.future.done() and item.options == first.options:
                turns.setdefault(item.request, deque()).append(item)
        batch: list[_Item[Source, Options, Result]] = []
        cost = 0
        while turns and len(batch) < self.max_sentences:
            for request in list(turns):
                item = turns[request][0]
                if batch and cost + item.cost > self.max_cost:
                    del turns[request]  # nothing more of this request fits this batch
                    continue
                batch.append(turns[request].popleft())
                cost += item.cost
                if not turns[request]:
                    del turns[request]
                if len(batch) >= self.max_sentences:
                    break
        return batch

    def _is_full(self, batch: list[_Item[Source, Options, Result]]) -> bool:
        if len(batch) >= self.max_sentences:
            return True
        return sum(item.cost for item in batch) >= self.max_cost

    async def _next_batch(self) -> list[_Item[Source, Options, Result]]:
        while True:
            while self._pending and self._pending[0].future.done():
                self._pending.popleft()  # cancelled by a client that left
            if not self._pending:
                self._arrival.clear()
                await self._arrival.wait()
                continue
            first = self._pending[0]
            batch = self._batch_of(first)
            remaining = first.arrived + self.max_wait - time.monotonic()
            if remaining <= 0 or self._is_full(batch):
                return batch
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except TimeoutError:
                pass

    async def _run(self) -> None:
        while True:
            batch: list[_Item[Source, Options, Result]] = []
            try:
                batch = await self._next_batch()
                taken = {id(item) for item in batch}
                self._pending = deque(item for item in self._pending if id(item) not in taken)
                await self._decode_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the worker must outlive anything a batch does
                log.exception("batch worker error; continuing")
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(err)
            finally:
                self._busy_since = None

    async def _decode_batch(self, batch: list[_Item[Source, Options, Result]]) -> None:
        loop = asyncio.get_running_loop()
        self._busy_since = start = time.monotonic()
        sources, options = [item.source for item in batch], batch[0].options
        try:
            results = await loop.run_in_executor(self._executor, self._decode, sources, options)
        except Exception as err:
            if len(batch) == 1:
                log.warning("decoding failed for one text: %r", err)
                if not batch[0].future.done():
                    batch[0].future.set_exception(err)
                return
            log.warning("a batch of %d failed (%r); decoding its texts one by one", len(batch), err)
            for item in batch:
                await self._decode_batch([item])
            return
        seconds = time.monotonic() - start
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                info = BatchInfo(len(batch), (start - item.arrived) * 1000, seconds * 1000)
                item.future.set_result((result, info))
        if self._on_batch is not None:
            self._on_batch(len(batch), sum(item.cost for item in batch), seconds)
