"""Bounded work: the worst requests the default limits allow, and a one-sentence request
sent while each runs.

    python benchmarks/service_bounds.py --checkpoint runs/bench_quality/best.pt \\
        --out runs/bench_bounds

Starts ``nmt serve`` with the default settings (CPU, fp32) and, for each kind of
request built to just fit the limits (the most texts of the longest real sentences,
the fewest texts at the per-text subword limit, letter salad that a model will not
end early, characters that normalization expands), sends it at the largest beam and
n-best the server allows, with alignments; 0.5 s later it sends one short sentence.
Reports per kind: status, seconds to the answer, response size, and the short
request's latency. Writes OUT/bounds.json and prints a table. Goal (issue 12): each
answered or refused within 10 s of decoding, under 20 MB, the short one within 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from service_load import ROOT, served

from nmt.checkpoint import read_checkpoint, tokenizers
from nmt.documents.sentences import split_sentences
from nmt.search import SearchConfig
from nmt.text_files import read_lines
from service.settings import Settings


def fit(tokens: list[str], count: Callable[[str], int], limit: int) -> str:
    """The longest prefix of the words ``tokens`` whose subword count stays within limit."""
    low, high = 1, len(tokens)
    while low < high:
        mid = (low + high + 1) // 2
        if count(" ".join(tokens[:mid])) <= limit:
            low = mid
        else:
            high = mid - 1
    return " ".join(tokens[:low])


def expanding(count: Callable[[str], int], limit: int) -> str:
    """The most U+FDFA (one character, 18 after normalization) within ``limit`` subwords."""
    text = "\ufdfa"
    while count(text + "\ufdfa") <= limit:
        text += "\ufdfa"
    return text


def worst_requests(checkpoint: Path, sentences: list[str], s: Settings) -> dict[str, list[str]]:
    """Requests built to the default limits (texts, subwords per text and per request,
    decoding work at the largest beam)."""
    src_tok, _ = tokenizers(read_checkpoint(checkpoint))

    def count(text: str) -> int:
        return len(src_tok.encode([text])[0])

    words = " ".join(sentences).split()
    rng = random.Random(0)
    salad = " ".join(
        "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(2, 9)))
        for _ in range(5000)
    ).split()
    per_text = s.max_request_tokens // s.max_texts
    requests = {
        f"{s.max_texts} short texts": [
            fit(words[(i * 40) % len(words) :], count, per_text) for i in range(s.max_texts)
        ],
        "longest texts": [
            fit(words[i * 300 :][:600], count, s.max_text_tokens)[: s.max_chars]
            for i in range(s.max_request_tokens // s.max_text_tokens)
        ],
        "letter salad": [
            fit(salad[(i * 50) % 4500 :], count, min(per_text * 3, s.max_text_tokens))[
                : s.max_chars
            ]
            for i in range(s.max_request_tokens // min(per_text * 3, s.max_text_tokens))
        ],
        "expanding characters": [expanding(count, per_text)] * s.max_texts,
    }
    cfg = SearchConfig()
    for name, candidates in requests.items():
        # as many of the texts as the work limit allows at the largest beam, counted
        # per sentence as the server does
        work, texts = 0.0, []
        for text in candidates:
            for sentence in split_sentences(text, "en", s.max_sentence_chars).sentences:
                work += (count(sentence) * cfg.max_len_a + cfg.max_len_b) * s.max_beam_size
            if work > s.max_request_work:
                break
            texts.append(text)
        requests[name] = texts
        total = sum(count(t) for t in texts)
        print(f"{name}: {len(texts)} texts, {total} subwords, longest {max(map(count, texts))}")
    return requests


async def probe(base: str, texts: list[str], s: Settings, short: str) -> dict:
    body = {
        "text": texts,
        "model": "m",
        "beam_size": s.max_beam_size,
        "n_best": min(s.max_n_best, s.max_beam_size),
        "alignments": True,
    }
    async with httpx.AsyncClient(base_url=base, timeout=300) as http:
        started = time.perf_counter()
        big = asyncio.ensure_future(http.post("/v1/translate", json=body))
        await asyncio.sleep(0.5)
        small_started = time.perf_counter()
        small = await http.post("/v1/translate", json={"text": short, "model": "m"})
        small_seconds = time.perf_counter() - small_started
        response = await big
        seconds = time.perf_counter() - started
    timing = response.json().get("timing", {}) if response.status_code == 200 else {}
    return {
        "status": response.status_code,
        "seconds": round(seconds, 2),
        "decode_ms_longest_batch": timing.get("decode_ms"),
        "response_mb": round(len(response.content) / 1e6, 2),
        "error": response.json().get("error") if response.status_code != 200 else None,
        "short_status": small.status_code,
        "short_seconds": round(small_seconds, 2),
        "short_queue_ms": round(small.json()["timing"]["queue_ms"]),
        "short_decode_ms": round(small.json()["timing"]["decode_ms"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench_bounds")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    defaults = Settings()
    sentences = read_lines(args.data / "test_2016_flickr.en.gz")
    checkpoint = args.checkpoint.resolve()
    requests = worst_requests(checkpoint, sentences, defaults)
    results = {}
    with served(checkpoint, env={"NMT_MAX_WAIT_MS": str(defaults.max_wait_ms)}) as (base, _):
        asyncio.run(probe(base, sentences[:4], defaults, sentences[5]))  # warm-up
        for name, texts in requests.items():
            results[name] = asyncio.run(probe(base, texts, defaults, sentences[7]))
            print(name, results[name], flush=True)
    (args.out / "bounds.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print("\n| request | status | seconds | response MB | short request s |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['status']} | {r['seconds']} | {r['response_mb']} | "
            f"{r['short_seconds']} |"
        )


if __name__ == "__main__":
    main()
