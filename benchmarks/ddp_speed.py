"""Training throughput of two CPU processes (torchrun, gloo) against one process.

    python benchmarks/ddp_speed.py --minutes 5 --out runs/bench_ddp

Trains the shipped en->de config for ``--minutes`` each: one process with all cores
(2 threads here), then two processes with one thread each under torchrun. Both log
target tokens/s over all processes; the median of the logged windows is compared.
Validation is switched off so that only training is timed. Writes OUT/ddp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def throughput(curve: Path) -> dict:
    """Median of the logged windows (all processes' tokens; the first window, with
    warm-up, left out) and tokens over minutes at the last log line."""
    records = [r for r in map(json.loads, curve.read_text().splitlines()) if r["kind"] == "train"]
    last = records[-1]
    return {
        "median_tgt_tokens_per_s": round(
            statistics.median(r["tgt_tokens_per_s"] for r in records[1:]), 1
        ),
        "overall_tgt_tokens_per_s": round(last["tgt_tokens_total"] / (last["minutes"] * 60), 1),
        "steps": last["step"],
        "log_windows": len(records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench_ddp")
    parser.add_argument("--config", type=Path, default=ROOT / "configs/multi30k_en_de.yaml")
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    common = ["train", "--config", str(args.config), "--max-minutes", str(args.minutes)]
    common += ["--set", "train.valid_every=1000000", "--set", "train.keep_last=0"]
    common += ["--set", "train.log_every=10"]
    runs = {
        "one_process": [sys.executable, "-m", "nmt.cli", *common, "--set",
                        f"train.num_threads={cores}"],
        "two_processes": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "-m", "nmt.cli", *common, "--set",
                          f"train.num_threads={max(1, cores // 2)}"],
    }  # fmt: skip
    result = {}
    for name, launch in runs.items():
        out = args.out / name
        shutil.rmtree(out, ignore_errors=True)
        command = [*launch, "--output-dir", str(out)]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
        result[name] = throughput(out / "curve.jsonl")
        print(name, result[name], flush=True)
    result["ratio_two_over_one"] = round(
        result["two_processes"]["median_tgt_tokens_per_s"]
        / result["one_process"]["median_tgt_tokens_per_s"],
        3,
    )
    (args.out / "ddp.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
