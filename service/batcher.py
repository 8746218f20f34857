"""Dynamic batching: concurrent requests for one model are decoded together, fairly.

Texts wait in a bounded queue. A worker takes the oldest text and, with the same
search options, texts of the waiting requests in turn (one from each request, round
after round), up to a number of sentences and a decoding cost, waiting at most
``max_wait_ms`` after the oldest text arrived for the batch to fill. Taking requests in
turn means that a request of many long texts never makes a one-sentence request that
arrives after it wait for more than one batch; the cost bound keeps each batch short.

The workers are threads (one or more per model) that form their batches themselves:
each goes from one batch to the next without waiting for the event loop, which only
queues texts and receives results. Several workers decode several batches at once, each
on its own core, which on a small CPU beats spreading one batch over all cores. A batch
that fails is decoded again text by text, so that only the text at fault gets the
error; a worker outlives any exception and records when it started its batch, for the
liveness probe.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
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
    # set on the event loop when nobody waits for the result any more; read by the worker
    # (a plain flag: the future itself belongs to the loop's thread)
    abandoned: bool = False


class Batcher(Generic[Source, Options, Result]):
    """Queue and worker threads for one model.

    Args:
        decode: sources, options -> one result per source, in order; runs in the worker.
        cost: the decoding work of one source under the options (e.g. subwords x beam),
            for the batch's cost bound.
        on_batch: called after each batch with (texts, total cost, decode seconds).
        clock: seconds on a monotonic clock (tests pass one they control).
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
        workers: int = 1,
        on_batch: Callable[[int, int, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._decode = decode
        self._cost = cost
        self.max_sentences = max_sentences
        self.max_cost = max_cost
        self.max_wait = max_wait_ms / 1000
        self.queue_size = queue_size
        self._on_batch = on_batch
        self._pending: deque[_Item[Source, Options, Result]] = deque()
        self._changed = threading.Condition()  # guards _pending and _closed
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requests = itertools.count()
        self._last_turn: dict[int, float] = {}  # request -> when its last batch was done
        self.workers = workers
        self._threads: list[threading.Thread] = []
        # worker thread -> when the batch it decodes started
        self._busy_since: dict[int, float] = {}

    @property
    def depth(self) -> int:
        """Texts waiting to be decoded."""
        return len(self._pending)

    def stalled_for(self) -> float:
        """Seconds the most stuck worker has been decoding one batch (infinite if a
        worker died with texts waiting); 0 while they make progress or have nothing
        to do."""
        if any(not t.is_alive() for t in self._threads) and self._pending:
            return float("inf")
        started = list(self._busy_since.values())
        return self._clock() - min(started) if started else 0.0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._threads = [
            threading.Thread(target=self._run, name=f"decode-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    async def close(self) -> None:
        with self._changed:
            self._closed = True
            for item in self._pending:
                item.future.cancel()
            self._pending.clear()
            self._changed.notify_all()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 5)

    async def submit(
        self, sources: list[Source], options: Options, timeout: float | None = None
    ) -> list[tuple[Result, BatchInfo]]:
        """Queue ``sources`` and wait for their results (in order).

        Raises:
            QueueFull: the queue has no room for all of ``sources``.
            DeadlineExceeded: not done within ``timeout`` seconds; the texts not yet
                decoded have left the queue.
        """
        loop = asyncio.get_running_loop()
        now, request = self._clock(), next(self._requests)
        items = [
            _Item(s, self._cost(s, options), options, request, now, loop.create_future())
            for s in sources
        ]
        with self._changed:
            if len(self._pending) + len(items) > self.queue_size:
                raise QueueFull(f"{len(self._pending)} texts are already waiting")
            self._pending.extend(items)
            self._changed.notify()
        try:
            async with asyncio.timeout(timeout):
                return list(await asyncio.gather(*(item.future for item in items)))
        except TimeoutError as err:
            raise DeadlineExceeded(f"not decoded within {timeout:g} s") from err
        finally:
            # a client that left or timed out: its texts need not be decoded
            leftover = [i for i in items if i.future.cancelled() or not i.future.done()]
            if leftover:
                for item in leftover:
                    item.abandoned = True
                    item.future.cancel()
                gone = {id(item) for item in leftover}
                with self._changed:
                    self._pending = deque(i for i in self._pending if id(i) not in gone)

    # ------------------------------------------------------------------ worker
    def _batch_of(
        self, first: _Item[Source, Options, Result]
    ) -> list[_Item[Source, Options, Result]]:
        """Texts with the options of ``first``, one per request in turn, within the limits.

        ``first`` is always taken, even alone over the cost bound.
        """
        turns: dict[int, deque[_Item[Source, Options, Result]]] = {}
        for item in self._pending:
            if not item.abandoned and item.options == first.options:
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

    def _next_batch(self) -> list[_Item[Source, Options, Result]] | None:
        """Wait for a batch worth decoding and take it out of the queue; None on close."""
        with self._changed:
            while not self._closed:
                while self._pending and self._pending[0].abandoned:
                    self._pending.popleft()  # a client that left
                if not self._pending:
                    self._changed.wait()
                    continue
                first = self._lead()
                batch = self._batch_of(first)
                remaining = first.arrived + self.max_wait - self._clock()
                if remaining > 0 and not self._is_full(batch):
                    self._changed.wait(remaining)
                    continue
                taken = {id(item) for item in batch}
                self._pending = deque(item for item in self._pending if id(item) not in taken)
                return batch
        return None

    def _lead(self) -> _Item[Source, Options, Result]:
        """The text whose request has waited longest (since it arrived, or since its
        last batch was done): it leads the next batch, and its options decide which
        texts may join. Oldest-first alone would let a large request with other search
        options hold every later request back until all its texts are done."""
        return min(
            (item for item in self._pending if not item.abandoned),
            key=lambda item: self._last_turn.get(item.request, item.arrived),
        )

    def _note_turns(self, batch: list[_Item[Source, Options, Result]]) -> None:
        """Record that the requests of ``batch`` just had a turn."""
        now = self._clock()
        with self._changed:
            for item in batch:
                self._last_turn[item.request] = now
            waiting = {item.request for item in self._pending}
            for request in [r for r in self._last_turn if r not in waiting]:
                del self._last_turn[request]

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._decode_batch(batch)
            except Exception as err:  # the worker must outlive anything a batch does
                log.exception("batch worker error; continuing")
                self._deliver(batch, err)
            finally:
                self._busy_since.pop(threading.get_ident(), None)
                self._note_turns(batch)

    def _decode_batch(self, batch: list[_Item[Source, Options, Result]]) -> None:
        self._busy_since[threading.get_ident()] = start = self._clock()
        try:
            results = self._decode([item.source for item in batch], batch[0].options)
        except Exception as err:
            if len(batch) == 1:
                log.warning("decoding failed for one text: %r", err)
                self._deliver(batch, err)
                return
            log.warning("a batch of %d failed (%r); decoding its texts one by one", len(batch), err)
            for item in batch:
                self._decode_batch([item])
            return
        seconds = self._clock() - start
        infos = [BatchInfo(len(batch), (start - i.arrived) * 1000, seconds * 1000) for i in batch]
        self._deliver(batch, list(zip(results, infos, strict=True)))
        if self._on_batch is not None:
            self._on_batch(len(batch), sum(item.cost for item in batch), seconds)

    def _deliver(
        self,
        batch: list[_Item[Source, Options, Result]],
        outcome: list[tuple[Result, BatchInfo]] | Exception,
    ) -> None:
        """Hand results (or one error for all) to the waiting requests, on their loop."""
        assert self._loop is not None
        futures = [item.future for item in batch]
        self._loop.call_soon_threadsafe(_settle, futures, outcome)


def _settle(
    futures: list[asyncio.Future[tuple[Result, BatchInfo]]],
    outcome: list[tuple[Result, BatchInfo]] | Exception,
) -> None:
    for i, future in enumerate(futures):
        if future.done():  # abandoned: nobody waits
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome[i])
