"""Dynamic batching: concurrent requests for one model are decoded together.

Texts wait in a bounded queue. A worker takes the oldest text and every other queued
text with the same search options, up to a number of sentences and source subwords,
waiting at most ``max_wait_ms`` after the oldest text arrived for the batch to fill.
Decoding runs in a single worker thread per model, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Options = TypeVar("Options")
Result = TypeVar("Result")


class QueueFull(Exception):
    """The model's queue cannot take the texts of this request now."""


@dataclass(frozen=True)
class BatchInfo:
    """What happened to the batch a text was decoded in."""

    size: int  # texts in the batch
    wait_ms: float  # this text's time in the queue
    decode_ms: float  # the batch's decoding time


@dataclass
class _Item(Generic[Options, Result]):
    text: str
    tokens: int
    options: Options
    arrived: float
    future: asyncio.Future[tuple[Result, BatchInfo]] = field(repr=False)


class Batcher(Generic[Options, Result]):
    """Queue and worker for one model.

    Args:
        decode: texts, options -> one result per text, in order; runs in a thread.
        count_tokens: the size of a text in source subwords, for the token limit.
        on_batch: called after each batch with (texts, source tokens, decode seconds).
    """

    def __init__(
        self,
        decode: Callable[[list[str], Options], list[Result]],
        count_tokens: Callable[[str], int],
        *,
        max_sentences: int,
        max_tokens: int,
        max_wait_ms: float,
        queue_size: int,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._decode = decode
        self._count_tokens = count_tokens
        self.max_sentences = max_sentences
        self.max_tokens = max_tokens
        self.max_wait = max_wait_ms / 1000
        self.queue_size = queue_size
        self._on_batch = on_batch
        self._pending: deque[_Item[Options, Result]] = deque()
        self._arrival = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self._worker: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Texts waiting to be decoded."""
        return len(self._pending)

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

    async def submit(self, texts: list[str], options: Options) -> list[tuple[Result, BatchInfo]]:
        """Queue ``texts`` and wait for their results (in order).

        Raises:
            QueueFull: the queue has no room for all of ``texts``.
        """
        if len(self._pending) + len(texts) > self.queue_size:
            raise QueueFull(f"{len(self._pending)} texts are already waiting")
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        items = [
            _Item(text, self._count_tokens(text), options, now, loop.create_future())
            for text in texts
        ]
        self._pending.extend(items)
        self._arrival.set()
        try:
            return list(await asyncio.gather(*(item.future for item in items)))
        except asyncio.CancelledError:
            # the client went away: its texts need not be decoded
            for item in items:
                item.future.cancel()
            raise

    # ------------------------------------------------------------------ worker
    def _batch_of(self, first: _Item[Options, Result]) -> list[_Item[Options, Result]]:
        """The oldest item and the following ones with its options, within the limits."""
        batch: list[_Item[Options, Result]] = []
        tokens = 0
        for item in self._pending:
            if item.future.done() or item.options != first.options:
                continue
            if batch and (
                len(batch) >= self.max_sentences or tokens + item.tokens > self.max_tokens
            ):
                break
            batch.append(item)
            tokens += item.tokens
        return batch

    def _is_full(self, batch: list[_Item[Options, Result]]) -> bool:
        if len(batch) >= self.max_sentences:
            return True
        return sum(item.tokens for item in batch) >= self.max_tokens

    async def _next_batch(self) -> list[_Item[Options, Result]]:
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
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            taken = {id(item) for item in batch}
            self._pending = deque(item for item in self._pending if id(item) not in taken)
            texts = [item.text for item in batch]
            start = time.monotonic()
            try:
                results = await loop.run_in_executor(
                    self._executor, self._decode, texts, batch[0].options
                )
            except Exception as err:  # a decoding failure fails this batch, not the worker
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(err)
                continue
            seconds = time.monotonic() - start
            if self._on_batch is not None:
                self._on_batch(len(batch), sum(item.tokens for item in batch), seconds)
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    info = BatchInfo(len(batch), (start - item.arrived) * 1000, seconds * 1000)
                    item.future.set_result((result, info))
