"""Resident memory of a training run over time, and its speed, per allocator setting.

Trains the shipped config (validation included, as in a real run) for ``--minutes``
under each named variant in turn, ``--rounds`` times alternating, sampling the
process's resident memory every second. Prints and writes OUT/memory.json: per run the
peak and the resident memory at each minute, the median logged target tokens/s, and
the processor (benchmarks/machine.py).

    python benchmarks/train_memory.py --minutes 8 --variants glibc-tuned,jemalloc --rounds 1

Variants are NMT_MALLOC values (``nmt.process.ALLOCATORS``), which the entry point
applies before the run starts: ``glibc-tuned`` (the default: glibc keeps freed memory,
trimmed after 1 GiB of growth), ``glibc`` (glibc's own defaults), ``jemalloc`` and
``tcmalloc`` (Debian's libjemalloc2 / libtcmalloc-minimal4, preloaded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import describe
from nmt_commands import memory_summary, run_sampled

from nmt.process import ALLOCATORS

ROOT = Path(__file__).resolve().parent.parent


def run(variant: str, minutes: float, out: Path, config: str) -> dict:
    run_dir = out / f"{variant}"
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    cmd = [sys.executable, "-m", "nmt.cli", "train", "--config", config]
    cmd += ["--output-dir", str(run_dir), "--max-minutes", str(minutes)]
    env = {**os.environ, "NMT_MALLOC": variant}
    started = time.monotonic()
    with open(out / f"{variant}.log", "w", encoding="utf-8") as log:
        code, samples = run_sampled(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
    if code != 0:
        raise SystemExit(f"{variant}: training failed, see {out / variant}.log")
    records = [json.loads(x) for x in (run_dir / "curve.jsonl").read_text().splitlines()]
    speeds = [r["tgt_tokens_per_s"] for r in records if r["kind"] == "train"][1:]
    return {
        "variant": variant,
        **memory_summary(samples),
        "tgt_tok_s_logged_median": round(statistics.median(speeds), 1),
        "steps": max(r["step"] for r in records if r["kind"] == "train"),
        "wall_s": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--variants", default="glibc-tuned,jemalloc")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--config", default="configs/multi30k_en_de.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_memory")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = set(variants) - set(ALLOCATORS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}: use {', '.join(ALLOCATORS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": describe(), "minutes": args.minutes, "runs": []}
    for _ in range(args.rounds):
        for variant in variants:
            result["runs"].append(run(variant, args.minutes, args.out, args.config))
            print(json.dumps(result["runs"][-1]), flush=True)
            (args.out / "memory.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
