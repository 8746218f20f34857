"""The HTTP service in-process: endpoints, JSON shapes, alignments, limits and errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nmt.search import SearchConfig
from nmt.translator import Translator
from service.app import create_app
from service.settings import Settings

SENTENCES = ["the dog runs", "a big red ball", "the woman sees a small cat"]


def wait_ready(client: TestClient, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/ready")
        if response.status_code == 200 or not response.json()["loading"]:
            return response.json()
        assert time.monotonic() < deadline, "models did not load"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def client(toy_model: Path) -> Iterator[TestClient]:
    settings = Settings(
        models={"toy": toy_model},
        device="cpu",
        max_chars=100,
        max_texts=8,
        max_beam_size=4,
        default_beam_size=2,
        max_n_best=3,
        max_wait_ms=20,
    )
    with TestClient(create_app(settings)) as c:
        assert wait_ready(c)["ready"]
        yield c


def translate(client: TestClient, **body: object) -> dict:
    response = client.post("/v1/translate", json={"source": "xx", "target": "yy", **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_translate_returns_the_translator_output_with_consistent_alignments(
    client: TestClient, toy_model: Path
) -> None:
    body = translate(client, text=SENTENCES, beam_size=3, n_best=3)
    assert (body["model"], body["source"], body["target"]) == ("toy", "xx", "yy")
    expected = Translator.from_checkpoint(toy_model, "cpu").translate(
        SENTENCES, SearchConfig(beam_size=3, n_best=3, alpha=1.0)
    )
    assert len(body["translations"]) == len(SENTENCES)
    for got, want in zip(body["translations"], expected, strict=True):
        assert got["translation"] == want.text
        assert got["score"] == pytest.approx(want.score, abs=1e-5)
        assert [a["translation"] for a in got["n_best"]] == [t for t, _ in want.n_best]
        assert got["source_tokens"] == want.source_tokens
        assert got["target_tokens"] == want.target_tokens
        rows, cols = len(got["target_tokens"]) + 1, len(got["source_tokens"])
        assert len(got["attention"]) == rows and {len(r) for r in got["attention"]} == {cols}
        assert all(sum(r) == pytest.approx(1.0, abs=1e-4) for r in got["attention"])
        n_src, n_tgt = len(got["source_words"]), len(got["target_words"])
        assert len(got["word_attention"]) == n_tgt
        assert got["alignment"], "every target word is aligned to some source word"
        for src_word, tgt_word in got["alignment"]:
            assert 0 <= src_word < n_src and 0 <= tgt_word < n_tgt
        assert 0.0 <= got["confidence"] <= 1.0
    assert body["timing"]["total_ms"] >= body["timing"]["decode_ms"] > 0


def test_model_by_name_single_string_and_no_alignments(client: TestClient) -> None:
    response = client.post(
        "/v1/translate", json={"text": "a big cat", "model": "toy", "alignments": False}
    )
    assert response.status_code == 200
    result = response.json()["translations"][0]
    assert result["attention"] is None and result["alignment"] is None
    assert result["target_tokens"]


def test_concurrent_requests_are_batched_and_equal_single_answers(client: TestClient) -> None:
    singles = {s: translate(client, text=s)["translations"][0]["translation"] for s in SENTENCES}
    answers: dict[int, dict] = {}

    def ask(i: int) -> None:
        answers[i] = translate(client, text=SENTENCES[i % len(SENTENCES)])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, body in answers.items():
        assert body["translations"][0]["translation"] == singles[SENTENCES[i % len(SENTENCES)]]
    sizes = [body["timing"]["batch_sizes"][0] for body in answers.values()]
    assert max(sizes) > 1, f"no two requests were decoded together: {sizes}"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"text": ""}, 422, "text"),
        ({"text": "   \n"}, 422, "text"),
        ({"text": ["ok", ""]}, 422, "text[1]"),
        ({"text": "x" * 101}, 422, "text"),
        ({"text": ["a"] * 9}, 422, "text"),
        ({"text": []}, 422, "text"),
        ({"text": 5}, 422, "text"),
        ({"text": "the dog", "beam_size": 5}, 422, "beam_size"),
        ({"text": "the dog", "beam_size": 0}, 422, "beam_size"),
        ({"text": "the dog", "n_best": 4, "beam_size": 4}, 422, "n_best"),
        ({"text": "the dog", "n_best": 3, "beam_size": 2}, 422, "n_best"),
        ({"text": "the dog", "alpha": "high"}, 422, "alpha"),
        ({"text": "the dog", "extra": 1}, 422, "extra"),
        ({"text": "the dog", "target": "zz"}, 400, "target"),
        ({"text": "the dog", "model": "nope", "source": None, "target": None}, 400, "model"),
        ({"text": "the dog", "source": None}, 422, "model"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_problem(
    client: TestClient, body: dict, status: int, field: str
) -> None:
    response = client.post("/v1/translate", json={"source": "xx", "target": "yy", **body})
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error", "field"}
    assert error["field"] == field and field.split("[", maxsplit=1)[0] in error["error"]
    translate(client, text="the dog")  # and the server keeps serving


def test_malformed_json_and_unknown_routes_use_the_error_shape(client: TestClient) -> None:
    response = client.post(
        "/v1/translate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and "error" in response.json()
    response = client.get("/v2/nothing")
    assert response.status_code == 404 and set(response.json()) == {"error", "field"}


def test_libretranslate_form_json_lists_and_alternatives(client: TestClient) -> None:
    single = translate(client, text="the dog runs")["translations"][0]["translation"]
    form = client.post("/translate", data={"q": "the dog runs", "source": "xx", "target": "yy"})
    assert form.status_code == 200 and form.json() == {"translatedText": single}
    as_list = client.post(
        "/translate",
        json={"q": ["the dog runs", "a cat"], "source": "xx", "target": "yy", "alternatives": 1},
    ).json()
    assert as_list["translatedText"][0] == single and len(as_list["translatedText"]) == 2
    assert [len(a) for a in as_list["alternatives"]] == [1, 1]
    auto = client.post("/translate", json={"q": "the dog runs", "source": "auto", "target": "yy"})
    assert auto.json()["translatedText"] == single
    bad = client.post("/translate", json={"q": "hi", "source": "xx", "target": "qq"})
    assert bad.status_code == 400 and "error" in bad.json()
    pdf = client.post(
        "/translate", json={"q": "hi", "source": "xx", "target": "yy", "format": "pdf"}
    )  # LibreTranslate's routes answer 400 for any bad input
    assert pdf.status_code == 400 and pdf.json()["field"] == "format"


def test_languages_models_health_metrics_and_page(client: TestClient) -> None:
    assert client.get("/languages").json() == [
        {"code": "xx", "name": "xx", "targets": ["yy"]},
        {"code": "yy", "name": "yy", "targets": []},
    ]
    (info,) = client.get("/v1/models").json()["models"]
    assert (info["name"], info["source"], info["target"], info["device"]) == (
        "toy",
        "xx",
        "yy",
        "cpu",
    )
    assert info["parameters"] > 0 and info["scores"]["valid_bleu"] > 30
    assert "nrefs:1" in info["scores"]["bleu_signature"]
    assert client.get("/health").json() == {"status": "ok", "stalled": []}
    translate(client, text="the dog")
    metrics = client.get("/metrics").text
    assert 'nmt_http_requests_total{method="POST",route="/v1/translate",status="200"}' in metrics
    assert 'nmt_batch_texts_count{model="toy"}' in metrics
    assert 'nmt_queue_texts{model="toy"}' in metrics
    assert "nmt_target_tokens_total" in metrics
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="heatmap"' in page.text


def test_api_keys_are_required_when_configured(toy_model: Path) -> None:
    settings = Settings(models={"toy": toy_model}, device="cpu", api_keys=["s3cret"])
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        body = {"text": "the dog", "source": "xx", "target": "yy"}
        assert c.post("/v1/translate", json=body).status_code == 401
        assert c.post("/v1/translate", json=body, headers={"X-API-Key": "no"}).status_code == 403
        ok = c.post("/v1/translate", json=body, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        libre = {"q": "the dog", "source": "xx", "target": "yy"}
        assert c.post("/translate", data={**libre, "api_key": "no"}).status_code == 403
        assert c.post("/translate", data={**libre, "api_key": "s3cret"}).status_code == 200


def test_a_model_is_batched_as_its_device_wants_unless_told(toy_model: Path) -> None:
    for told, expected in [({}, (16, 2)), ({"max_batch_sentences": 5}, (5, 2))]:
        settings = Settings(models={"toy": toy_model}, device="cpu", **told)
        with TestClient(create_app(settings)) as c:
            wait_ready(c)
            batcher = c.app.state.registry.models["toy"].batcher
            assert (batcher.max_sentences, batcher.workers) == expected


def test_a_full_queue_answers_429_with_retry_after(toy_model: Path) -> None:
    # batches wait up to 2 s for company, so the first request's texts stay queued
    settings = Settings(
        models={"toy": toy_model},
        device="cpu",
        queue_size=4,
        max_texts=4,
        max_wait_ms=2000,
        max_batch_sentences=64,
    )
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        first: dict = {}
        body = {"source": "xx", "target": "yy"}
        t = threading.Thread(
            target=lambda: first.update(
                r=c.post("/v1/translate", json={**body, "text": ["the dog"] * 3})
            )
        )
        t.start()
        batcher = c.app.state.registry.models["toy"].batcher
        deadline = time.monotonic() + 30
        while batcher.depth < 3:  # the first request's texts are queued
            assert time.monotonic() < deadline and t.is_alive()
            time.sleep(0.01)
        busy = c.post("/v1/translate", json={**body, "text": ["a cat", "a dog"]})
        t.join()
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
        assert "busy" in busy.json()["error"]
        assert first["r"].status_code == 200


def test_ready_names_a_model_that_failed_but_not_why(
    tmp_path: Path, toy_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(toy_model.read_bytes()[:1000])
    settings = Settings(models={"toy": toy_model, "bad": broken}, device="cpu")
    with TestClient(create_app(settings)) as c:
        ready = wait_ready(c)
        response = c.get("/ready")
        assert response.status_code == 503 and not ready["ready"] and not ready["loading"]
        assert ready["models"] == {"toy": "loaded", "bad": "failed"}
        assert str(tmp_path) not in response.text and "truncated" not in response.text
        # the path and the reason are in the log, for the operator
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert str(broken) in logged and "truncated" in logged
        # the healthy model still serves; liveness is unaffected
        assert c.post("/v1/translate", json={"text": "the dog", "model": "toy"}).status_code == 200
        assert c.get("/health").status_code == 200
    degraded = settings.model_copy(update={"ready_when": "any"})
    with TestClient(create_app(degraded)) as c:
        assert wait_ready(c)["ready"]
        assert c.get("/ready").json()["models"]["bad"] == "failed"


def test_ready_is_503_while_loading_then_200(
    toy_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = threading.Event()
    real = Translator.from_checkpoint

    def slow_load(path: Path, *args: str | None) -> Translator:
        loaded.wait(timeout=30)  # held until the test has seen the loading state
        return real(path, *args)

    monkeypatch.setattr("service.registry.Translator.from_checkpoint", slow_load)
    settings = Settings(models={"toy": toy_model}, device="cpu")
    with TestClient(create_app(settings)) as c:
        early = c.get("/ready")
        assert early.status_code == 503 and early.json()["loading"]
        assert early.headers["Retry-After"] == "5"
        busy = c.post("/v1/translate", json={"text": "the dog", "model": "toy"})
        assert busy.status_code == 503 and "loading" in busy.json()["error"]
        assert c.get("/health").status_code == 200  # alive while loading
        loaded.set()
        assert wait_ready(c)["ready"]
        assert c.get("/ready").status_code == 200


def test_cors_origins_are_allowed_when_configured(toy_model: Path) -> None:
    settings = Settings(
        models={"toy": toy_model}, device="cpu", cors_origins=["https://app.example"]
    )
    with TestClient(create_app(settings)) as c:
        preflight = c.options(
            "/v1/translate",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = c.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
