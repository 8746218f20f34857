"""Load with bad traffic: 32 clients for 2 minutes, one request in ten adversarial.

    python benchmarks/service_bad_traffic.py --checkpoint runs/bench_quality/best.pt \\
        --out runs/bench_bad_traffic --clients 32 --seconds 120

Starts ``nmt serve`` (CPU, fp32, default settings), records the answer to each of the
first ``--sentences`` test_2016_flickr sentences sent alone, then lets the clients loop:
nine requests in ten are one of those sentences, the tenth is drawn from the
adversarial kinds (invisible characters, expanding characters, 10,000-deep JSON, a body
over the limit, nulls, wrong types, a blank list entry, the longest text allowed).
Counts 5xx answers, broken connections, and good answers that differ from their
single-request answer. Writes OUT/bad_traffic.json. Goal (issue 12): zero of each.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import time
from pathlib import Path

import httpx
from service_load import ROOT, served

from nmt.text_files import read_lines

JSON = {"content-type": "application/json"}
ADVERSARIAL: list[tuple[str, str, dict]] = [
    ("zero-width", "/v1/translate", {"json": {"text": "\u200b\u200b\u200b", "model": "m"}}),
    ("byte-order mark", "/translate", {"json": {"q": "\ufeff", "source": "en", "target": "de"}}),
    ("combining marks", "/v1/translate", {"json": {"text": "\u0301\u0308" * 40, "model": "m"}}),
    ("expanding", "/v1/translate", {"json": {"text": "\ufdfa" * 999, "model": "m"}}),
    ("deep JSON", "/v1/translate", {"content": b"[" * 10_000, "headers": JSON}),
    ("oversize body", "/translate",
     {"content": b'{"q": "' + b"a" * 1_200_000 + b'"}', "headers": JSON}),
    ("null", "/v1/translate", {"json": {"text": None, "model": "m"}}),
    ("wrong type", "/translate", {"json": {"q": 12, "source": "en", "target": "de"}}),
    ("blank in list", "/v1/translate", {"json": {"text": ["a dog", " "], "model": "m"}}),
    ("long text", "/v1/translate", {"json": {"text": "a dog runs " * 90, "model": "m"}}),
]  # fmt: skip


async def singles(base: str, sentences: list[str]) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        answers = {}
        for s in sentences:
            r = await http.post("/v1/translate", json={"text": s, "model": "m"})
            answers[s] = r.json()["translations"][0]["translation"]
        return answers


async def hammer(base: str, expected: dict[str, str], clients: int, seconds: float) -> dict:
    counts: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[str] = collections.Counter()
    mismatches: list[dict] = []
    sentences = list(expected)
    stop = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            try:
                if rng.random() < 0.1:
                    name, route, kwargs = rng.choice(ADVERSARIAL)
                    r = await http.post(route, **kwargs)
                    statuses[f"{name} {r.status_code}"] += 1
                    counts["bad"] += 1
                else:
                    text = rng.choice(sentences)
                    r = await http.post("/v1/translate", json={"text": text, "model": "m"})
                    counts["good"] += 1
                    got = (
                        r.json()["translations"][0]["translation"] if r.status_code == 200 else None
                    )
                    if got != expected[text]:
                        mismatches.append({"text": text, "status": r.status_code, "got": got})
                if r.status_code >= 500:
                    counts["5xx"] += 1
            except httpx.TransportError as err:
                counts["broken connections"] += 1
                statuses[type(err).__name__] += 1

    async with httpx.AsyncClient(
        base_url=base, timeout=120, limits=httpx.Limits(max_connections=clients)
    ) as http:
        await asyncio.gather(*(client(http, i) for i in range(clients)))
    return {
        "requests": counts["good"] + counts["bad"],
        "good": counts["good"],
        "adversarial": counts["bad"],
        "5xx": counts["5xx"],
        "broken_connections": counts["broken connections"],
        "good_answers_differing": len(mismatches),
        "mismatch_examples": mismatches[:5],
        "adversarial_statuses": dict(sorted(statuses.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench_bad_traffic")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--sentences", type=int, default=100)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sentences = read_lines(args.data / "test_2016_flickr.en.gz")[: args.sentences]
    with served(args.checkpoint.resolve()) as (base, _):
        expected = asyncio.run(singles(base, sentences))
        result = asyncio.run(hammer(base, expected, args.clients, args.seconds))
    result.update(clients=args.clients, seconds=args.seconds)
    (args.out / "bad_traffic.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
