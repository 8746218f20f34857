"""Hostile and broken input, keys in logs, and SIGTERM, against a real ``nmt serve``."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port, serve_command, server_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

NORMAL = ["the dog runs", "a big red ball", "the woman sees a small cat"]
JSON = {"content-type": "application/json"}

# (name, route, what is sent, what may come back): bad requests get a 4xx naming the
# problem, or 200 with an empty translation where that is the documented answer.
V1, LIBRE = "/v1/translate", "/translate"
BAD: list[tuple[str, str, dict, set[int]]] = [
    ("zero-width spaces", V1, {"json": {"text": "\u200b\u200b\u200b", "model": "toy"}}, {200}),
    ("byte-order mark", V1, {"json": {"text": "\ufeff", "model": "toy"}}, {200}),
    ("combining marks", V1, {"json": {"text": "\u0301\u0308\u0301", "model": "toy"}}, {200}),
    ("expanding characters", V1, {"json": {"text": "\ufdfa" * 150, "model": "toy"}}, {200, 422}),
    ("libre expanding", LIBRE,
     {"json": {"q": ["\ufdfa" * 150] * 3, "source": "xx", "target": "yy"}}, {200, 400}),
    ("10,000-deep JSON", V1, {"content": b"[" * 10_000, "headers": JSON}, {400}),
    ("10,000-deep libre", LIBRE, {"content": b'{"q":' + b"[" * 10_000, "headers": JSON}, {400}),
    ("body over the limit", V1,
     {"content": b'{"text": "' + b"a" * 1_100_000 + b'"}', "headers": JSON}, {413}),
    ("null text", V1, {"json": {"text": None, "model": "toy"}}, {422}),
    ("null in list", V1, {"json": {"text": ["the dog", None], "model": "toy"}}, {422}),
    ("number text", V1, {"json": {"text": 5, "model": "toy"}}, {422}),
    ("string beam", V1, {"json": {"text": "the dog", "model": "toy", "beam_size": "x"}}, {422}),
    ("body not an object", V1, {"json": [1, 2]}, {422}),
    # LibreTranslate's routes answer 400 for any bad input, as LibreTranslate does
    ("libre null", LIBRE, {"json": {"q": None, "source": "xx", "target": "yy"}}, {400}),
    ("libre wrong type", LIBRE, {"json": {"q": {"a": 1}, "source": "xx", "target": "yy"}}, {400}),
]  # fmt: skip


def test_bad_requests_sent_among_good_ones_spare_them(live_server: str) -> None:
    alone = {
        text: httpx.post(f"{live_server}/v1/translate", json={"text": text, "model": "toy"}).json()
        for text in NORMAL
    }

    async def good(client: httpx.AsyncClient, text: str) -> tuple[str, httpx.Response]:
        return text, await client.post("/v1/translate", json={"text": text, "model": "toy"})

    async def bad(client: httpx.AsyncClient, case: tuple) -> tuple[str, httpx.Response]:
        name, route, kwargs, _ = case
        return name, await client.post(route, **kwargs)

    async def together() -> list[tuple[str, httpx.Response]]:
        async with httpx.AsyncClient(base_url=live_server, timeout=120) as client:
            jobs = [good(client, NORMAL[i % len(NORMAL)]) for i in range(24)]
            jobs += [bad(client, case) for case in BAD]
            return await asyncio.gather(*jobs)

    answers = dict.fromkeys(NORMAL, 0)
    for name, response in asyncio.run(together()):
        if name in alone:
            assert response.status_code == 200, response.text
            got, want = response.json()["translations"][0], alone[name]["translations"][0]
            assert got["translation"] == want["translation"]
            assert got["score"] == pytest.approx(want["score"], abs=1e-4)
            for got_row, want_row in zip(got["attention"], want["attention"], strict=True):
                assert got_row == pytest.approx(want_row, abs=1e-4)
            answers[name] += 1
            continue
        allowed = next(codes for case, _, _, codes in BAD if case == name)
        assert response.status_code in allowed, (name, response.status_code, response.text)
        body = response.json()
        if response.status_code == 200 and name in ("zero-width spaces", "byte-order mark"):
            assert body["translations"][0]["translation"] == ""
        elif response.status_code != 200:
            assert body["error"], name  # one error shape, saying what is wrong
    assert sum(answers.values()) == 24


def test_limit_refusals_name_the_limit(live_server: str) -> None:
    expanding = httpx.post(
        f"{live_server}/v1/translate", json={"text": "\ufdfa" * 150, "model": "toy"}
    )
    if expanding.status_code == 422:
        assert "max_text_tokens" in expanding.json()["error"]
    big = httpx.post(f"{live_server}/v1/translate", content=b"x" * 1_100_000, headers=JSON)
    assert big.status_code == 413 and "bytes" in big.json()["error"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=60), libre=st.booleans())
def test_any_unicode_string_gets_an_answer_not_a_5xx(
    live_server: str, text: str, libre: bool
) -> None:
    if libre:
        response = httpx.post(
            f"{live_server}/translate", json={"q": text, "source": "xx", "target": "yy"}
        )
    else:
        response = httpx.post(f"{live_server}/v1/translate", json={"text": text, "model": "toy"})
    # bad input: 422 on /v1, 400 on LibreTranslate's route (an empty q is "missing")
    assert response.status_code in (200, 400 if libre else 422), response.text
    if response.status_code != 200:
        assert response.json()["error"]


def test_no_key_reaches_the_log(toy_model: Path, tmp_path: Path) -> None:
    keys = {"header": "hdr-key-7f3a91", "body": "body-key-2c8e44", "query": "qry-key-91bd07"}
    wrong = "wrong-key-5d6e2f"
    key_file = tmp_path / "keys"
    key_file.write_text("\n".join(keys.values()) + "\n", encoding="utf-8")
    port = free_port()
    env = {**os.environ, "NMT_API_KEYS_FILE": str(key_file), "NMT_RATE_LIMIT_REQUESTS": "12"}
    command = serve_command(toy_model, port, log_level="debug")
    with server_process(command, env, port) as server:
        libre = {"q": "the dog", "source": "xx", "target": "yy"}
        sent = [
            httpx.post(f"{server.base}/v1/translate", json={"text": "a dog", "model": "toy"},
                       headers={"X-API-Key": keys["header"]}),
            httpx.post(f"{server.base}/translate", json={**libre, "api_key": keys["body"]}),
            httpx.post(f"{server.base}/translate?api_key={keys['query']}", json=libre),
            httpx.post(f"{server.base}/translate", data={**libre, "api_key": keys["body"]}),
            httpx.post(f"{server.base}/translate?api_key={wrong}", json=libre),
            httpx.post(f"{server.base}/v1/translate", json={"text": "a", "model": "toy"},
                       headers={"X-API-Key": wrong}),
        ]  # fmt: skip
        assert [r.status_code for r in sent] == [200, 200, 200, 200, 403, 403]
        limited = [
            httpx.post(f"{server.base}/translate?api_key={keys['query']}", json=libre)
            for _ in range(12)
        ]
        assert limited[-1].status_code == 429 and int(limited[-1].headers["Retry-After"]) >= 1
        time.sleep(0.5)
        log = server.output()
    assert "POST /translate?api_key=[redacted]" in log  # the access log was on
    for key in [*keys.values(), wrong]:
        assert key not in log


def test_sigterm_drains_in_flight_requests_then_exits(toy_model: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "NMT_SHUTDOWN_DELAY_S": "1",
        "NMT_GRACEFUL_SHUTDOWN_S": "15",
        "NMT_MAX_WAIT_MS": "300",  # the requests are still queued when the signal comes
        "NMT_MAX_BATCH_SENTENCES": "8",
    }
    with server_process(serve_command(toy_model, port), env, port) as server:

        async def scenario() -> tuple[list[int], list[int], float]:
            async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
                requests = [
                    asyncio.ensure_future(
                        client.post(
                            "/v1/translate",
                            json={"text": NORMAL[i % 3], "model": "toy", "beam_size": 4},
                        )
                    )
                    for i in range(32)
                ]
                await asyncio.sleep(0.15)
                server.proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                ready = []
                for _ in range(3):
                    ready.append((await client.get("/ready")).status_code)
                    await asyncio.sleep(0.1)
                answers = await asyncio.gather(*requests)
                return [r.status_code for r in answers], ready, signalled

        codes, ready, signalled = asyncio.run(scenario())
        server.proc.wait(timeout=30)
        exited = time.monotonic() - signalled
    assert codes == [200] * 32
    assert ready == [503, 503, 503]
    assert exited < 1 + 15


def test_a_client_that_gives_up_leaves_the_queue(toy_model: Path) -> None:
    port = free_port()
    # a batch waits 3 s for company: the text is still queued when its client leaves
    env = {**os.environ, "NMT_MAX_WAIT_MS": "3000"}
    with server_process(serve_command(toy_model, port), env, port) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{server.base}/v1/translate",
                json={"text": "the dog runs", "model": "toy"},
                timeout=0.5,
            )
        time.sleep(4)
        metrics = httpx.get(f"{server.base}/metrics").text
    samples = {
        (s.name, s.labels.get("model"), s.labels.get("status")): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    assert samples[("nmt_queue_texts", "toy", None)] == 0
    assert samples.get(("nmt_batch_texts_count", "toy", None), 0) == 0  # never decoded
    assert samples[("nmt_http_requests_total", None, "499")] == 1
