"""Limits that bound a request's work, per-client rates, and API keys (in-process)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_service import wait_ready

from nmt.checkpoint import read_checkpoint, tokenizers
from service.app import create_app
from service.guard import json_too_deep
from service.redaction import KeyRedactor
from service.settings import Settings, load_settings

BODY = {"source": "xx", "target": "yy"}


def _client(toy_model: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(models={"toy": toy_model}, device="cpu", **settings)))


def test_body_size_depth_and_subword_limits_are_4xx_naming_the_limit(toy_model: Path) -> None:
    with _client(toy_model, max_body_bytes=12_000, max_text_tokens=12, max_request_tokens=20) as c:
        wait_ready(c)
        big = c.post("/v1/translate", json={**BODY, "text": "the dog " * 2000})
        assert big.status_code == 413 and "12000 bytes" in big.json()["error"]
        deep = c.post(
            "/v1/translate", content=b"[" * 10_000, headers={"content-type": "application/json"}
        )
        assert deep.status_code == 400 and "nested deeper" in deep.json()["error"]
        libre = c.post("/translate", content=b'{"q": ' + b"[" * 500 + b"]" * 500 + b"}",
                       headers={"content-type": "application/json"})  # fmt: skip
        assert libre.status_code == 400
        # brackets in a form are text, not nesting
        for sent in (
            {"data": {**BODY, "q": "[" * 20 + "{" * 20}},
            {"files": {"q": (None, "[" * 30)}, "data": BODY},
        ):
            answer = c.post("/translate", **sent)  # type: ignore[arg-type]
            assert "nested" not in answer.text and answer.status_code != 400, answer.text
        long_text = c.post("/v1/translate", json={**BODY, "text": "the big red dog runs " * 4})
        assert long_text.status_code == 422
        assert (
            "max_text_tokens" in long_text.json()["error"] and long_text.json()["field"] == "text"
        )
        many = c.post("/v1/translate", json={**BODY, "text": ["the big red dog runs"] * 6})
        assert many.status_code == 422 and "max_request_tokens" in many.json()["error"]
        ok = c.post("/v1/translate", json={**BODY, "text": ["the dog runs"] * 2})
        assert ok.status_code == 200


def test_decoding_work_is_bounded_by_steps_times_beam(toy_model: Path) -> None:
    """Each sentence may take 1.5 x subwords + 10 search steps, times the beam."""
    (pieces,) = tokenizers(read_checkpoint(toy_model))[0].encode(["dog"])
    four_at_beam_4 = int((1.5 * len(pieces) + 10) * 4 * 4)
    settings = {"max_beam_size": 4, "default_beam_size": 4, "max_request_work": four_at_beam_4}
    with _client(toy_model, **settings) as c:
        wait_ready(c)
        body = {**BODY, "beam_size": 4, "text": ["dog"] * 4}
        assert c.post("/v1/translate", json=body).status_code == 200
        over = c.post("/v1/translate", json={**body, "text": ["dog"] * 5})
        assert over.status_code == 422 and "max_request_work" in over.json()["error"]
        smaller_beam = c.post("/v1/translate", json={**body, "text": ["dog"] * 5, "beam_size": 3})
        assert smaller_beam.status_code == 200
        libre = c.post("/translate", json={"q": ["dog"] * 20, "source": "xx", "target": "yy"})
        assert libre.status_code == 400 and "max_request_work" in libre.json()["error"]


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    assert not json_too_deep(b'{"q": ["[[[[[[[[[[[[", "{{{{{{{{{{{{{"]}', 3)
    assert json_too_deep(b'{"a": [[[1]]]}', 3)
    assert not json_too_deep(b'{"a": [[1]]}', 3)
    assert not json_too_deep(b'{"q": "say \\"[[[[\\" twice"}', 2)


def test_output_is_capped_by_max_output_tokens(toy_model: Path) -> None:
    with _client(toy_model, max_output_tokens=3) as c:
        wait_ready(c)
        body = c.post("/v1/translate", json={**BODY, "text": "the big red dog runs and the cat"})
        assert body.status_code == 200
        assert len(body.json()["translations"][0]["target_tokens"]) <= 2


def test_request_and_character_rates_answer_429_with_retry_after(toy_model: Path) -> None:
    with _client(toy_model, rate_limit_requests=3) as c:
        wait_ready(c)
        codes = [c.post("/v1/translate", json={**BODY, "text": "the dog"}).status_code
                 for _ in range(4)]  # fmt: skip
        assert codes == [200, 200, 200, 429]
        refused = c.post("/translate", json={**BODY, "q": "the dog"})
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "3 requests a minute" in refused.json()["error"]
        assert c.get("/health").status_code == 200  # operations are not rate limited
    with _client(toy_model, rate_limit_chars=30) as c:
        wait_ready(c)
        text = "the dog runs"  # 12 characters
        codes = [c.post("/v1/translate", json={**BODY, "text": text}).status_code
                 for _ in range(3)]  # fmt: skip
        assert codes == [200, 200, 429]
        too_big = c.post(
            "/v1/translate", json={**BODY, "text": "a " * 20}, headers={"X-API-Key": "k"}
        )
        assert too_big.status_code == 413 and "30 a minute" in too_big.json()["error"]


def test_rates_count_per_key_and_per_trusted_address(toy_model: Path) -> None:
    with _client(toy_model, rate_limit_requests=1, client_address_header="X-Forwarded-For",
                 api_keys=["k1", "k2"]) as c:  # fmt: skip
        wait_ready(c)

        def post(key: str, forwarded: str | None = None) -> int:
            headers = {"X-API-Key": key} | ({"X-Forwarded-For": forwarded} if forwarded else {})
            return c.post(
                "/v1/translate", json={**BODY, "text": "a dog"}, headers=headers
            ).status_code

        assert [post("k1"), post("k2"), post("k1")] == [200, 200, 429]
        libre = {**BODY, "q": "a dog"}
        first = c.post("/translate", json={**libre, "api_key": "k1"},
                       headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.1"})  # fmt: skip
        # a body key is checked after the request rate, which then counts the address
        assert first.status_code == 200
        again = c.post("/translate", json={**libre, "api_key": "k2"},
                       headers={"X-Forwarded-For": "203.0.113.9"})  # fmt: skip
        assert again.status_code == 429


def test_keys_from_a_file_and_checked_before_the_body_is_read(
    toy_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nalpha-key\n\n  beta-key  \n", encoding="utf-8")
    monkeypatch.setenv("NMT_API_KEYS_FILE", str(keys))
    settings = load_settings(models={"toy": toy_model}, device="cpu")
    assert [k.get_secret_value() for k in settings.api_keys] == ["alpha-key", "beta-key"]
    assert "alpha-key" not in repr(settings)
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        ok = c.post(
            "/v1/translate", json={**BODY, "text": "a dog"}, headers={"X-API-Key": "beta-key"}
        )
        assert ok.status_code == 200
        # a malformed body is never parsed for a client without a valid key
        junk = b"[" * 10_000
        for headers, status in (({}, 401), ({"X-API-Key": "wrong"}, 403)):
            headers["content-type"] = "application/json"
            assert c.post("/v1/translate", content=junk, headers=headers).status_code == status
        assert (
            c.post("/translate?api_key=alpha-key", json={**BODY, "q": "a dog"}).status_code == 200
        )
    keys.write_text("# none\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no key"):
        load_settings()


def test_the_redactor_removes_keys_from_messages_arguments_and_tracebacks() -> None:
    redactor = KeyRedactor(["s3cret-key"])
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", "/translate?q=x&api_key=other-key&z=1", "1.1", 200), None,
    )  # fmt: skip
    assert redactor.filter(record)
    assert "other-key" not in record.getMessage() and "api_key=[redacted]" in record.getMessage()
    try:
        raise ValueError("bad key s3cret-key")
    except ValueError:
        import sys

        failed = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed for %s", ("s3cret-key",), sys.exc_info()
        )
    redactor.filter(failed)
    assert "s3cret-key" not in failed.getMessage() and "s3cret-key" not in (failed.exc_text or "")


def test_a_missed_deadline_is_503_and_a_stuck_worker_fails_liveness(
    toy_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from nmt.translator import Translator

    release = threading.Event()
    real = Translator.translate_ids

    def stuck(self: Translator, *args: object, **kwargs: object) -> object:
        release.wait(10)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Translator, "translate_ids", stuck)
    with _client(toy_model, request_timeout_s=0.5, stall_seconds=0.3, max_wait_ms=0) as c:
        wait_ready(c)
        late = c.post("/v1/translate", json={**BODY, "text": "the dog"})
        assert late.status_code == 503 and late.headers["Retry-After"]
        assert "request_timeout_s" in late.json()["error"]
        health = c.get("/health")
        assert health.status_code == 503 and health.json() == {
            "status": "stalled",
            "stalled": ["toy"],
        }
        release.set()
        deadline = time.monotonic() + 10
        while c.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "the worker did not recover"
            time.sleep(0.05)
