"""The dynamic batcher with a stand-in decoder: grouping, limits, waiting, overload."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.batcher import Batcher, DeadlineExceeded, QueueFull


def _batcher(calls: list, **limits: float) -> Batcher[str, str, str]:
    def decode(texts: list[str], options: str) -> list[str]:
        calls.append((list(texts), options))
        time.sleep(0.01)
        return [f"{options}:{t.upper()}" for t in texts]

    settings = {"max_sentences": 4, "max_cost": 100, "max_wait_ms": 50, "queue_size": 16}
    return Batcher(decode, lambda text, _: len(text.split()), **{**settings, **limits})


def test_concurrent_texts_share_batches_by_options_and_keep_their_order() -> None:
    async def scenario() -> tuple[list, list]:
        calls: list = []
        batcher = _batcher(calls)
        batcher.start()
        try:
            answers = await asyncio.gather(
                batcher.submit(["a", "b"], "x"),
                batcher.submit(["c"], "y"),
                batcher.submit(["d", "e", "f"], "x"),
            )
        finally:
            await batcher.close()
        return answers, calls

    answers, calls = asyncio.run(scenario())
    assert [[r for r, _ in a] for a in answers] == [["x:A", "x:B"], ["y:C"], ["x:D", "x:E", "x:F"]]
    # options never mix; at most 4 texts per batch; the oldest text goes first, then
    # the requests with the same options take turns
    assert calls == [(["a", "d", "b", "e"], "x"), (["c"], "y"), (["f"], "x")]
    sizes = [info.size for _, info in answers[0]]
    assert sizes == [4, 4]


def test_a_lone_text_waits_for_company_until_max_wait_on_the_batchers_clock() -> None:
    now = [100.0]  # the batcher's clock: it moves only when this test says so

    async def scenario() -> tuple[bool, float]:
        batcher = _batcher([], max_wait_ms=80, clock=lambda: now[0])
        batcher.start()
        try:
            answer = asyncio.ensure_future(batcher.submit(["alone"], "x"))
            await asyncio.sleep(0.3)  # real time passes, the batcher's does not
            waited_for_company = not answer.done()
            now[0] += 0.080
            ((_, info),) = await asyncio.wait_for(answer, 10)
        finally:
            await batcher.close()
        return waited_for_company, info.wait_ms

    waited_for_company, wait_ms = asyncio.run(scenario())
    assert waited_for_company
    assert wait_ms == pytest.approx(80)  # then went alone, once max_wait had passed


def test_a_full_batch_leaves_without_waiting() -> None:
    async def scenario() -> float:
        batcher = _batcher([], max_wait_ms=5000, max_sentences=3)
        batcher.start()
        try:
            done = await batcher.submit(["a", "b", "c"], "x")
        finally:
            await batcher.close()
        return max(info.wait_ms for _, info in done)

    assert asyncio.run(scenario()) < 1000


def test_cost_limit_splits_batches() -> None:
    async def scenario() -> list:
        calls: list = []
        batcher = _batcher(calls, max_cost=5, max_wait_ms=0)
        batcher.start()
        try:
            await batcher.submit(["one two three", "four five", "six"], "x")
        finally:
            await batcher.close()
        return calls

    assert [texts for texts, _ in asyncio.run(scenario())] == [
        ["one two three", "four five"],
        ["six"],
    ]


def test_a_full_queue_refuses_new_texts() -> None:
    async def scenario() -> None:
        batcher = _batcher([], queue_size=3, max_wait_ms=1000, max_sentences=10)
        batcher.start()
        try:
            waiting = asyncio.ensure_future(batcher.submit(["a", "b"], "x"))
            await asyncio.sleep(0.05)
            assert batcher.depth == 2
            with pytest.raises(QueueFull):
                await batcher.submit(["c", "d"], "x")
            assert len(await waiting) == 2
        finally:
            await batcher.close()

    asyncio.run(scenario())


def _large_then_small(
    large: tuple[list[str], str], small: tuple[list[str], str], **limits: float
) -> list:
    """The decode calls when ``small`` arrives while ``large``'s first batch decodes."""

    async def scenario() -> list:
        calls: list = []
        batcher = _batcher(calls, max_wait_ms=0, **limits)
        batcher.start()
        try:
            waiting = asyncio.ensure_future(batcher.submit(*large))
            await asyncio.sleep(0.005)  # the first batch of the large request is decoding
            await batcher.submit(*small)
            await waiting
        finally:
            await batcher.close()
        return calls

    return asyncio.run(scenario())


def test_a_small_request_behind_a_large_one_is_in_the_next_batch() -> None:
    calls = _large_then_small(
        (["long text here"] * 12, "x"), (["short"], "x"), max_sentences=64, max_cost=6
    )
    batch_of_short = next(i for i, (texts, _) in enumerate(calls) if "short" in texts)
    assert batch_of_short <= 1, calls
    assert all(len(texts) <= 2 for texts, _ in calls)  # 3 + 3 words fill the cost of 6


def test_a_small_request_with_other_options_is_not_held_back_by_a_large_one() -> None:
    calls = _large_then_small(
        (["text"] * 12, "beam10"), (["short"], "beam5"), max_sentences=2, max_cost=100
    )
    assert next(i for i, (_, options) in enumerate(calls) if options == "beam5") <= 1, calls


def test_a_failing_text_fails_alone_and_the_worker_goes_on() -> None:
    def decode(texts: list[str], options: str) -> list[str]:
        if "bad" in texts:
            raise RuntimeError("cannot decode 'bad'")
        return [t.upper() for t in texts]

    async def scenario() -> tuple[list, BaseException, list]:
        batcher: Batcher[str, str, str] = Batcher(
            decode, lambda t, _: 1, max_sentences=8, max_cost=100, max_wait_ms=30, queue_size=16
        )
        batcher.start()
        try:
            results = await asyncio.gather(
                batcher.submit(["good", "also"], "x"),
                batcher.submit(["bad"], "x"),
                batcher.submit(["fine"], "x"),
                return_exceptions=True,
            )
            after = await batcher.submit(["later"], "x")
        finally:
            await batcher.close()
        return results, results[1], after

    results, error, after = asyncio.run(scenario())
    assert [r for r, _ in results[0]] == ["GOOD", "ALSO"]
    assert isinstance(error, RuntimeError) and "bad" in str(error)
    assert [r for r, _ in results[2]] == ["FINE"]
    assert [r for r, _ in after] == ["LATER"]


def test_an_error_outside_decoding_fails_its_batch_and_not_the_worker() -> None:
    seen: list[int] = []

    def on_batch(size: int, cost: int, seconds: float) -> None:
        seen.append(size)
        if len(seen) == 1:
            raise ValueError("metrics broke")

    async def scenario() -> list:
        batcher: Batcher[str, str, str] = Batcher(
            lambda texts, _: texts, lambda t, _: 1, max_sentences=8, max_cost=100,
            max_wait_ms=0, queue_size=16, on_batch=on_batch,
        )  # fmt: skip
        batcher.start()
        try:
            first = await batcher.submit(["a"], "x")  # answered before the metrics call
            second = await batcher.submit(["b"], "x")
        finally:
            await batcher.close()
        return [first, second]

    first, second = asyncio.run(scenario())
    assert [r for r, _ in first] == ["a"] and [r for r, _ in second] == ["b"]
    assert seen == [1, 1]


def test_a_missed_deadline_takes_the_texts_out_of_the_queue() -> None:
    release = threading.Event()

    def decode(texts: list[str], options: str) -> list[str]:
        release.wait(5)
        return texts

    async def scenario() -> tuple[int, float]:
        batcher: Batcher[str, str, str] = Batcher(
            decode, lambda t, _: 1, max_sentences=1, max_cost=100, max_wait_ms=0, queue_size=16
        )
        batcher.start()
        try:
            busy = asyncio.ensure_future(batcher.submit(["first"], "x"))
            await asyncio.sleep(0.05)
            stalled = batcher.stalled_for()
            with pytest.raises(DeadlineExceeded, match=r"0\.2 s"):
                await batcher.submit(["late", "later"], "x", timeout=0.2)
            await asyncio.sleep(0)
            waiting = sum(not item.future.done() for item in batcher._pending)
            release.set()
            await busy
        finally:
            await batcher.close()
        return waiting, stalled

    waiting, stalled = asyncio.run(scenario())
    assert waiting == 0
    assert stalled > 0.01  # the worker is inside a batch: the liveness probe can see it


def test_a_cancelled_request_leaves_the_queue_undecoded() -> None:
    async def scenario() -> tuple[int, list]:
        calls: list = []
        batcher = _batcher(calls, max_wait_ms=300)
        batcher.start()
        try:
            waiting = asyncio.ensure_future(batcher.submit(["gone", "too"], "x"))
            await asyncio.sleep(0.05)
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            depth = batcher.depth
            await asyncio.sleep(0.4)  # past the batch's wait: nothing left to decode
        finally:
            await batcher.close()
        return depth, calls

    depth, calls = asyncio.run(scenario())
    assert depth == 0 and calls == []


def test_two_workers_decode_two_batches_at_once() -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def decode(texts: list[str], options: str) -> list[str]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1
        return texts

    async def scenario() -> None:
        batcher: Batcher[str, str, str] = Batcher(
            decode, lambda t, _: 1, max_sentences=2, max_cost=100, max_wait_ms=0,
            queue_size=16, workers=2,
        )  # fmt: skip
        batcher.start()
        try:
            await asyncio.gather(*(batcher.submit([f"t{i}"], "x") for i in range(6)))
        finally:
            await batcher.close()

    asyncio.run(scenario())
    assert most[0] == 2
