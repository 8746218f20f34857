"""The benchmarks' ``nmt`` commands: run one, score a checkpoint, or run one while
sampling its resident memory (peak and per-minute maxima)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from nmt.process import resident_bytes

ROOT = Path(__file__).resolve().parent.parent

# (seconds since start, resident bytes)
Samples = list[tuple[float, int]]


def nmt(*args: str) -> str:
    """Run ``nmt ARGS`` in the repository root; its standard output."""
    cmd = [sys.executable, "-m", "nmt.cli", *args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.PIPE, text=True).stdout


def evaluate(
    ckpt: Path | list[Path],
    data: Path,
    split: str,
    langs: tuple[str, str],
    beam: int,
    alpha: float | None = None,
    device: str = "cpu",
) -> dict:
    """``nmt evaluate --json`` of ``ckpt`` (several: their ensemble) on a Multi30k
    ``split`` (sacreBLEU cased and ``-lc``, chrF), on ``device``."""
    src, tgt = langs
    args = ["evaluate", "--src", str(data / f"{split}.{src}.gz")]
    args += ["--ref", str(data / f"{split}.{tgt}.gz"), "--beam-size", str(beam)]
    for path in ckpt if isinstance(ckpt, list) else [ckpt]:
        args += ["--checkpoint", str(path)]
    if alpha is not None:
        args += ["--alpha", str(alpha)]
    return json.loads(nmt(*args, "--json", "--device", device))


def run_sampled(
    cmd: list[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    every_s: float = 1.0,
) -> tuple[int, Samples]:
    """Run ``cmd`` to completion, reading its resident memory every ``every_s`` seconds
    (the process keeps its pid when the entry point restarts itself with another
    allocator). Returns its exit code and the samples."""
    started = time.monotonic()
    samples: Samples = []
    process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout, stderr=stderr)
    while process.poll() is None:
        rss = resident_bytes(process.pid)
        if rss is not None:
            samples.append((time.monotonic() - started, rss))
        time.sleep(every_s)
    return process.returncode, samples


def memory_summary(samples: Samples) -> dict:
    """Peak and the maximum of each minute, in MiB."""
    per_minute: dict[int, int] = {}
    for seconds, rss in samples:
        minute = int(seconds // 60)
        per_minute[minute] = max(per_minute.get(minute, 0), rss)
    return {
        "peak_rss_mib": round(max((rss for _, rss in samples), default=0) / 2**20),
        "rss_mib_by_minute": {m: round(per_minute[m] / 2**20) for m in sorted(per_minute)},
    }
