"""The service as deployed: a real ``nmt serve`` process on a TCP port, real clients."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

SENTENCES = ["the dog runs", "a big red ball", "the woman sees a small cat", "a man"]


def test_32_concurrent_clients_get_complete_correct_answers(live_server: str) -> None:
    singles = {
        s: httpx.post(f"{live_server}/v1/translate", json={"text": s, "model": "toy"}).json()
        for s in SENTENCES
    }

    async def one(client: httpx.AsyncClient, i: int) -> dict:
        text = SENTENCES[i % len(SENTENCES)]
        response = await client.post("/v1/translate", json={"text": text, "model": "toy"})
        assert response.status_code == 200, response.text
        return {"text": text, **response.json()}

    async def all_at_once() -> list[dict]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=live_server, limits=limits, timeout=60) as client:
            return await asyncio.gather(*(one(client, i) for i in range(32)))

    answers = asyncio.run(all_at_once())
    assert len(answers) == 32
    for answer in answers:
        want = singles[answer["text"]]["translations"][0]
        got = answer["translations"][0]
        assert got["translation"] == want["translation"]
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)
        for got_row, want_row in zip(got["attention"], want["attention"], strict=True):
            assert got_row == pytest.approx(want_row, abs=1e-4)
    assert max(a["timing"]["batch_sizes"][0] for a in answers) > 1


def test_openapi_schema_holds_and_nothing_answers_5xx(live_server: str, tmp_path: Path) -> None:
    """schemathesis generates requests (valid and invalid) from the server's OpenAPI
    schema; no answer may be a 5xx or fall outside the schema (all checks)."""
    command = [str(Path(sys.executable).parent / "schemathesis"), "run"]
    command += [f"{live_server}/openapi.json", "--checks", "all", "--max-examples", "40"]
    command += ["--seed", "1", "--request-timeout", "60", "--no-color"]
    command += ["--generation-database", "none", "--suppress-health-check", "all"]
    # Schema-valid requests may still be refused with a 4xx: the language pairs, the
    # character and text-count limits are server settings, not part of the schema.
    command += ["--exclude-checks", "positive_data_acceptance"]
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
