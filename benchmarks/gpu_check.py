"""GPU check: the CUDA tests, training, decoding and serving on one GPU, in one go.

Run it through ``benchmarks/gpu_check.sh``, which sets up the machine's Python (wheels
carried in ``.whl/``, the repository on the path) and then calls this:

    bash benchmarks/gpu_check.sh --out OUT                       # on a GPU machine
    bash benchmarks/gpu_check.sh --out runs/gpu_check_cpu --device cpu \\
        --train-minutes 0.5 --equal-batch-minutes 0.3 --sentences 200   # tried on a CPU

Steps, each recorded even when another fails (a failure is what this looks for):

1. machine: GPU name and memory, driver, PyTorch and CUDA versions, CPU;
2. tests: ``pytest -m cuda tests/test_cuda.py`` (each skipped, with its reason, without CUDA);
3. training: the default config (configs/multi30k_en_de.yaml) at its own batch for
   ``--equal-batch-minutes`` (comparable with the CPU figures in docs/benchmarks.md),
   then at ``--gpu-batch-tokens`` for ``--train-minutes``: target tokens/s (median of
   the logged windows, the first left out), the allocator's GPU peak, steps and validation BLEU;
4. decoding: that run's best.pt on test_2016_flickr, beam 5, fp32 and bf16, at batch
   64 and ``--decode-batch``: sentences/s (model loaded and warm), sacreBLEU cased/-lc;
5. service: ``nmt serve`` on the device with 1 and 32 concurrent clients, one sentence
   a request: sentences/s, latency p50/p99; with the default settings (the GPU's
   batching) and with the CPU's (16 sentences a batch, two workers).

Writes OUT/summary.json and OUT/summary.md (printed at the end), OUT/tests.log,
OUT/train_equal.log, OUT/train_gpu.log, OUT/curve_gpu.jsonl: at most 8 files, as the
device tool returns them. Run directories go to a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from ddp_speed import throughput
from decode import bleu
from machine import processor
from service_load import load, served

from nmt.device import synchronize
from nmt.search import DEFAULT_SEARCH
from nmt.text_files import read_lines
from nmt.translator import Translator
from service.settings import BATCHING_ON_CPU

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs/multi30k_en_de.yaml"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "cpu": processor(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            bf16=torch.cuda.is_bf16_supported(),
        )
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        )
        info["driver"] = smi.stdout.strip()
    return info


def run_tests(out: Path, timeout_s: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-rs", "-q"]
    command += ["-p", "no:cacheprovider", "tests/test_cuda.py"]
    with open(out / "tests.log", "w", encoding="utf-8") as log:
        done = subprocess.run(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s, check=False
        )
    summary = (out / "tests.log").read_text(encoding="utf-8").strip().splitlines()[-1]
    return {"command": " ".join(command[1:]), "exit_code": done.returncode, "summary": summary}


def train(
    run: Path, log: Path, data: Path, device: str, minutes: float, batch_tokens: int | None
) -> dict[str, Any]:
    """``nmt train`` of the default config for ``minutes``; its logged figures."""
    command = [sys.executable, "-m", "nmt.cli", "train", "--config", str(CONFIG)]
    command += ["--output-dir", str(run), "--device", device, "--set", f"data.dir={data}"]
    command += ["--max-minutes", str(minutes), "--set", "train.log_every=10"]
    if batch_tokens is not None:
        command += ["--set", f"train.batch_tokens={batch_tokens}"]
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run(
            command,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=minutes * 60 + 240,
            check=False,
        )
    curve = run / "curve.jsonl"
    records = [json.loads(x) for x in curve.read_text().splitlines()]
    logged = [r for r in records if r["kind"] == "train"]
    result = {
        "exit_code": done.returncode,
        "wall_s": round(time.monotonic() - started, 1),
        "batch_tokens": batch_tokens or "config default",
        # the allocator's peak since the process started: the last record's is the run's
        "gpu_peak_mib": logged[-1].get("gpu_peak_mib") if logged else None,
        "best_valid_bleu": max((r["bleu"] for r in records if r["kind"] == "valid"), default=None),
    }
    if len(logged) > 1:  # throughput leaves the first window (warm-up) out
        result |= throughput(curve)
    return result


def decode(
    checkpoint: Path, device: str, precision: str, sources: list[str], refs: list[str], batch: int
) -> dict[str, Any]:
    """Beam 5 over ``sources`` with the model loaded and warm: sentences/s and BLEU."""
    translator = Translator.from_checkpoint(checkpoint, device, precision=precision)
    cfg = replace(DEFAULT_SEARCH, beam_size=5, n_best=1)
    translator.translate(sources[:batch], cfg, batch)  # warm-up: kernels, allocator
    synchronize(translator.device)
    started = time.perf_counter()
    hyps = [t.text for t in translator.translate(sources, cfg, batch)]
    synchronize(translator.device)
    seconds = time.perf_counter() - started
    cased, lower = bleu(hyps, refs)
    return {
        "precision": precision,
        "batch": batch,
        "sentences_per_s": round(len(sources) / seconds, 1),
        "bleu": cased,
        "bleu_lc": lower,
    }


def serve(checkpoint: Path, device: str, sentences: list[str], env: dict[str, str]) -> dict:
    """``nmt serve`` on ``device``: 1 and 32 clients, one sentence a request."""
    result: dict[str, Any] = {"env": env}
    with served(checkpoint, env=env, device=device) as (base, _):
        asyncio.run(load(base, sentences[:64], 8))  # warm-up
        result["clients_1"] = asyncio.run(load(base, sentences[:100], 1))
        result["clients_32"] = asyncio.run(load(base, sentences, 32))
    return result


def attempt(results: dict[str, Any], name: str, step: Callable[[], Any]) -> None:
    """Run one step; record its result, or its error, and go on."""
    started = time.monotonic()
    print(f"== {name}", flush=True)
    try:
        results[name] = step()
    except Exception as err:  # a failure is a finding: record it, run the other steps
        results[name] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()}
        print(results[name]["trace"], flush=True)
    print(f"== {name}: {time.monotonic() - started:.0f} s", flush=True)


def markdown(results: dict[str, Any]) -> str:
    """The figures as the tables of docs/benchmarks.md."""
    m = results.get("machine", {})
    lines = [f"machine: {json.dumps(m)}", "", f"tests: {results.get('tests')}", ""]
    lines += ["| training | batch tokens | steps | tgt tok/s | GPU peak MiB | best val BLEU |"]
    lines += ["|---|---|---|---|---|---|"]
    for name in ("train_equal_batch", "train_gpu_batch"):
        r = results.get(name, {})
        cells = [r.get(k) for k in ("batch_tokens", "steps", "median_tgt_tokens_per_s")]
        cells += [r.get("gpu_peak_mib"), r.get("best_valid_bleu")]
        lines.append(f"| {name} | " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        "| decoding beam 5 | batch | sentences/s | BLEU | BLEU -lc |",
        "|---|---|---|---|---|",
    ]
    decoded = [results.get("decode_fp32"), results.get("decode_bf16")]
    for r in [r for runs in decoded if isinstance(runs, list) for r in runs]:
        lines.append(
            f"| {r['precision']} | {r['batch']} | {r['sentences_per_s']} | {r['bleu']} "
            f"| {r['bleu_lc']} |"
        )
    lines += ["", "| service | clients | sentences/s | p50 ms | p99 ms | mean batch |"]
    lines += ["|---|---|---|---|---|---|"]
    for name in ("serve_default", "serve_cpu_batching"):
        r = results.get(name, {})
        for level in ("clients_1", "clients_32"):
            x = r.get(level)
            if x:
                lines.append(
                    f"| {name} | {x['clients']} | {x['sentences_per_s']} | "
                    f"{x['latency_p50_ms']} | {x['latency_p99_ms']} | {x['mean_batch']} |"
                )
    errors = [
        f"- {k}: {v['error']}" for k, v in results.items() if isinstance(v, dict) and "error" in v
    ]
    return "\n".join([*lines, "", "errors:", *errors] if errors else lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda", help="cuda, or cpu to try the script")
    local = ROOT / ".gpu_data/multi30k"
    shared = ROOT.parent / "shared/data/multi30k"
    parser.add_argument("--data", type=Path, default=local if local.is_dir() else shared)
    parser.add_argument("--equal-batch-minutes", type=float, default=1.0)
    parser.add_argument("--train-minutes", type=float, default=3.0)
    parser.add_argument("--gpu-batch-tokens", type=int, default=16000)
    parser.add_argument("--decode-batch", type=int, default=256)
    parser.add_argument("--sentences", type=int, default=1000, help="test sentences used")
    parser.add_argument("--tests-timeout", type=float, default=240)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    data = args.data.resolve()
    sources = read_lines(data / "test_2016_flickr.en.gz")[: args.sentences]
    refs = read_lines(data / "test_2016_flickr.de.gz")[: args.sentences]
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    started = time.monotonic()
    attempt(results, "machine", machine)
    attempt(results, "tests", lambda: run_tests(args.out, args.tests_timeout))  # skipped on CPU
    equal, big = work / "equal", work / "gpu"
    attempt(
        results,
        "train_equal_batch",
        lambda: train(
            equal, args.out / "train_equal.log", data, args.device, args.equal_batch_minutes, None
        ),
    )
    attempt(
        results,
        "train_gpu_batch",
        lambda: train(
            big,
            args.out / "train_gpu.log",
            data,
            args.device,
            args.train_minutes,
            args.gpu_batch_tokens,
        ),
    )
    if (big / "curve.jsonl").exists():
        (args.out / "curve_gpu.jsonl").write_bytes((big / "curve.jsonl").read_bytes())
    best = big / "best.pt"
    for precision in ("fp32", "bf16"):
        attempt(
            results,
            f"decode_{precision}",
            lambda precision=precision: [
                decode(best, args.device, precision, sources, refs, batch)
                for batch in (64, args.decode_batch)
            ],
        )
    attempt(results, "serve_default", lambda: serve(best, args.device, sources, {}))
    cpu_batching = {
        "NMT_MAX_BATCH_SENTENCES": str(BATCHING_ON_CPU.max_sentences),
        "NMT_DECODE_WORKERS": str(BATCHING_ON_CPU.workers),
    }
    attempt(results, "serve_cpu_batching", lambda: serve(best, args.device, sources, cpu_batching))
    results["wall_s"] = round(time.monotonic() - started, 1)
    (args.out / "summary.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    table = markdown(results)
    (args.out / "summary.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
