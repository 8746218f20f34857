"""Service benchmark: one `nmt serve` replica under concurrent load.

    python benchmarks/service_load.py --checkpoint runs/bench_quality/best.pt \
        --out runs/bench_service

Starts the server (CPU, one model), records its resident memory once the model is
loaded, then sends the first ``--requests`` test_2016_flickr sentences one per request
at each concurrency level (1, 8, 32 clients) and reports sentences/s, latency p50/p95
and the mean size of the batches the server decoded them in. Runs once with the fp32
model and once with ``--quantize int8``. Writes OUT/service.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from nmt.device import resident_bytes
from training.data import read_lines

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    rss = resident_bytes(pid)
    return float("nan") if rss is None else rss / 2**20


async def load(base: str, sentences: list[str], clients: int) -> dict:
    """Send every sentence as its own request, ``clients`` at a time."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for s in sentences:
        queue.put_nowait(s)
    latencies: list[float] = []
    batch_sizes: list[int] = []

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            text = queue.get_nowait()
            start = time.perf_counter()
            response = await http.post(
                "/v1/translate", json={"text": text, "model": "m", "alignments": False}
            )
            response.raise_for_status()
            latencies.append((time.perf_counter() - start) * 1000)
            batch_sizes.extend(response.json()["timing"]["batch_sizes"])

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - start
    latencies.sort()
    return {
        "clients": clients,
        "sentences_per_s": round(len(sentences) / seconds, 1),
        "latency_p50_ms": round(statistics.median(latencies), 1),
        "latency_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "mean_batch": round(statistics.mean(batch_sizes), 1),
    }


def serve(checkpoint: Path, quantize: str | None, sentences: list[str]) -> dict:
    port = free_port()
    command = [sys.executable, "-m", "nmt.cli", "serve", "--model", f"m={checkpoint}"]
    command += ["--port", str(port), "--device", "cpu", "--log-level", "warning"]
    if quantize:
        command += ["--quantize", quantize]
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "NMT_MAX_WAIT_MS": "5"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("server did not become ready")
            time.sleep(0.2)
        result = {"quantize": quantize or "none", "rss_mib_loaded": round(rss_mib(server.pid), 1)}
        asyncio.run(load(base, sentences[:20], 4))  # warm-up
        result["levels"] = [asyncio.run(load(base, sentences, c)) for c in (1, 8, 32)]
        result["rss_mib_after"] = round(rss_mib(server.pid), 1)
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench_service")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sentences = read_lines(args.data / "test_2016_flickr.en.gz")[: args.requests]
    results = [serve(args.checkpoint.resolve(), q, sentences) for q in (None, "int8")]
    (args.out / "service.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print("\n| model | clients | sentences/s | p50 ms | p95 ms | mean batch | RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        for level in r["levels"]:
            print(
                f"| {r['quantize']} | {level['clients']} | {level['sentences_per_s']} | "
                f"{level['latency_p50_ms']} | {level['latency_p95_ms']} | {level['mean_batch']} | "
                f"{r['rss_mib_after']} |"
            )


if __name__ == "__main__":
    main()
