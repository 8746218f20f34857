"""Service benchmark: one `nmt serve` replica under concurrent load, against offline
decoding of the same sentences.

    python benchmarks/service_load.py --checkpoint runs/bench_quality/best.pt \\
        --out runs/bench_service --requests 1000 --levels 1 8 32

Starts the server (CPU, one model), records its resident memory once the model is
loaded, then sends the first ``--requests`` test_2016_flickr sentences one per request
at each concurrency level and reports sentences/s, latency p50/p95 and the mean size
of the batches the server decoded them in. Beside it, ``nmt translate --batch-size
32`` decodes the same sentences at the same beam (its own logged sentences/s, model
load excluded), and the table gives the service's share of that. Runs once with the
fp32 model and once with ``--quantize int8``; with ``--rounds N`` the served and
offline runs alternate N times and the table gives medians (and every round's share).
Writes OUT/service.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx

from nmt.process import resident_bytes
from nmt.text_files import read_lines

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    rss = resident_bytes(pid)
    return float("nan") if rss is None else rss / 2**20


async def load(base: str, sentences: list[str], clients: int) -> dict:
    """Send every sentence as its own request, ``clients`` at a time.

    aiohttp rather than httpx: the load generator shares the server's cores, and
    aiohttp's client costs about a tenth of httpx's CPU per request (0.4 against
    3.6-5.3 ms, measured).
    """
    queue: asyncio.Queue[str] = asyncio.Queue()
    for s in sentences:
        queue.put_nowait(s)
    latencies: list[float] = []
    batch_sizes: list[int] = []

    async def client(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            text = queue.get_nowait()
            start = time.perf_counter()
            body = {"text": text, "model": "m", "alignments": False}
            async with http.post(f"{base}/v1/translate", json=body) as response:
                response.raise_for_status()
                answer = await response.json()
            latencies.append((time.perf_counter() - start) * 1000)
            batch_sizes.extend(answer["timing"]["batch_sizes"])

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    latencies.sort()
    return {
        "clients": clients,
        "sentences_per_s": round(len(sentences) / seconds, 1),
        "latency_p50_ms": round(statistics.median(latencies), 1),
        "latency_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "latency_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1),
        "mean_batch": round(statistics.mean(batch_sizes), 1),
        # the load generator shares the machine: its CPU is taken from the server's
        "client_cpu_ms_per_request": round(cpu * 1000 / len(sentences), 2),
    }


@contextlib.contextmanager
def served(
    checkpoint: Path,
    quantize: str | None = None,
    env: dict[str, str] | None = None,
    device: str = "cpu",
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``nmt serve`` of ``checkpoint`` as model 'm' on ``device``, until it is ready."""
    port = free_port()
    command = [sys.executable, "-m", "nmt.cli", "serve", "--model", f"m={checkpoint}"]
    command += ["--port", str(port), "--device", device, "--log-level", "warning"]
    if quantize:
        command += ["--quantize", quantize]
    environment = {**os.environ, "NMT_MAX_WAIT_MS": "5", **(env or {})}
    server = subprocess.Popen(command, cwd=ROOT, env=environment)
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
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=60)


def offline(checkpoint: Path, quantize: str | None, source: Path, batch_size: int) -> float:
    """Sentences/s of ``nmt translate`` over ``source`` (as it logs them, load excluded)."""
    command = [sys.executable, "-m", "nmt.cli", "translate", "--checkpoint", str(checkpoint)]
    command += ["--input", str(source), "--batch-size", str(batch_size), "--device", "cpu"]
    command += ["--output", os.devnull] + (["--quantize", quantize] if quantize else [])
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    match = re.search(r"\(([\d.]+) sentences/s", done.stderr)
    if match is None:
        raise RuntimeError(f"no throughput in the log of nmt translate:\n{done.stderr}")
    return float(match.group(1))


def serve_and_offline(
    checkpoint: Path,
    quantize: str | None,
    sentences: list[str],
    levels: list[int],
    source: Path,
    offline_batch: int,
    rounds: int,
) -> dict:
    """``rounds`` times: every concurrency level against the server, then offline
    decoding of the same sentences (the server idles meanwhile), so that the machine's
    drift falls on both alike. Medians over the rounds."""
    with served(checkpoint, quantize) as (base, server):
        result: dict = {"quantize": quantize or "none", "rss_mib_loaded": rss_mib(server.pid)}
        asyncio.run(load(base, sentences[:20], 4))  # warm-up
        runs: list[list[dict]] = []
        offline_runs: list[float] = []
        for _ in range(rounds):
            runs.append([asyncio.run(load(base, sentences, c)) for c in levels])
            offline_runs.append(offline(checkpoint, quantize, source, offline_batch))
        result["rss_mib_after"] = round(rss_mib(server.pid), 1)
    result["offline_runs"] = offline_runs
    result["offline_sentences_per_s"] = statistics.median(offline_runs)
    result["levels"] = []
    for i, clients in enumerate(levels):
        of_level = [r[i] for r in runs]
        level = {
            key: statistics.median(r[key] for r in of_level)
            for key in of_level[0]
            if key != "clients"
        }
        level["clients"] = clients
        level["sentences_per_s_runs"] = [r["sentences_per_s"] for r in of_level]
        level["share_runs"] = [
            round(r["sentences_per_s"] / off, 3)
            for r, off in zip(of_level, offline_runs, strict=True)
        ]
        result["levels"].append(level)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench_service")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--offline-batch", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate served and offline runs N times"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sentences = read_lines(args.data / "test_2016_flickr.en.gz")[: args.requests]
    source = args.out / "sentences.en"
    source.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    checkpoint = args.checkpoint.resolve()
    results = []
    for quantize in (None, "int8"):
        results.append(
            serve_and_offline(
                checkpoint,
                quantize,
                sentences,
                args.levels,
                source,
                args.offline_batch,
                args.rounds,
            )
        )
    (args.out / "service.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(
        "\n| model | clients | sentences/s | of offline | each round | p50 ms | p95 ms "
        "| mean batch | RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for level in r["levels"]:
            share = level["sentences_per_s"] / r["offline_sentences_per_s"]
            rounds = " / ".join(f"{x:.0%}" for x in level["share_runs"])
            print(
                f"| {r['quantize']} | {level['clients']} | {level['sentences_per_s']} | "
                f"{share:.0%} | {rounds} | {level['latency_p50_ms']} | {level['latency_p95_ms']} | "
                f"{level['mean_batch']} | {r['rss_mib_after']} |"
            )
        print(
            f"| {r['quantize']} | offline batch {args.offline_batch} | "
            f"{r['offline_sentences_per_s']} | 100% | | | | | |"
        )


if __name__ == "__main__":
    main()
