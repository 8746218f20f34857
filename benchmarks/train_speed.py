"""Training-throughput benchmark against OpenNMT-py 3.5.1 and JoeyNMT 2.3.0, in one run.

Every system trains the peers' model (embeddings 256, bidirectional LSTM encoder with
256 units per direction, LSTM decoder 512 with input feeding, Luong 'general'
attention, dropout 0.3, joint SentencePiece unigram 8,000, batches of 4,000 target
tokens, no label smoothing) on Multi30k en->de for the same wall-clock budget, one
after the other, on this machine. The peers are installed and run by the scripts in
../shared/bench/peers (each in its own virtual environment; never project
dependencies).

    python benchmarks/train_speed.py --minutes 5 --systems ours,ours-2proc,onmt,joey

Prints and writes OUT/speed.json: median of the logged target tokens/s (first log
window dropped as warm-up) and whole-run target tokens/s (all target tokens trained
on, divided by the wall time of the whole command, start-up included). With
``--repeats N`` the list of systems is run N times in turn (so that the machine's
drift falls on every system alike), and the summary gives each system's medians over
the repetitions and each repetition's ratio to the first peer in the list.
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

from nmt.checkpoint import read_checkpoint
from nmt.process import ALLOCATORS

ROOT = Path(__file__).resolve().parent.parent
PEER_SCRIPTS = ROOT.parent / "shared" / "bench" / "peers"

PYTHON = [sys.executable]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
# name -> (launcher, overrides, environment); "ours-2proc" is the same model and the same
# 4,000-token batch split over two single-threaded processes (data parallel, gloo);
# "ours-<allocator>" is "ours" with NMT_MALLOC set (nmt.process.ALLOCATORS);
# "ours-pre17" is the schedule before issue 17's levers (Adam 0.001, no cooldown);
# "ours-kernels1024" keeps oneDNN's own cache of 1,024 compiled kernels instead of the
# bound that training sets (nmt.process.bound_kernel_cache)
OURS = {
    "ours": (PYTHON, ["train.precision=auto"], {}),
    "ours-pre17": (
        PYTHON,
        ["train.precision=auto", "train.learning_rate=0.001", "train.cooldown_fraction=0"],
        {},
    ),
    "ours-fp32": (PYTHON, ["train.precision=fp32"], {}),
    "ours-kernels1024": (
        PYTHON,
        ["train.precision=auto"],
        {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"},
    ),
    "ours-2proc": (
        TORCHRUN,
        ["train.precision=auto", "train.batch_tokens=2000", "train.num_threads=1"],
        {},
    ),
} | {
    f"ours-{allocator}": (PYTHON, ["train.precision=auto"], {"NMT_MALLOC": allocator})
    for allocator in ALLOCATORS
}


def run_ours(name: str, minutes: float, out: Path) -> dict:
    run_dir = out / name
    launcher, overrides, environment = OURS[name]
    cmd = [
        *launcher,
        "-m",
        "nmt.cli",
        "train",
        "--config",
        "configs/multi30k_en_de.yaml",
        "--output-dir",
        str(run_dir),
        "--max-minutes",
        str(minutes),
        "--set",
        "train.label_smoothing=0",
        "--set",
        "train.valid_every=1000000",
        "--set",
        "train.keep_last=0",
        "--set",
        "train.log_every=25",
        # the peers train on the corpus as it is: no joined pairs, the same sentences
        "--set",
        "data.run_on_fraction=0",
        # the peers' dropout and batch (the shipped config's are 0.2 and 3,000 since issue 17)
        "--set",
        "model.dropout=0.3",
        "--set",
        "train.batch_tokens=4000",
    ]
    for override in overrides:
        cmd += ["--set", override]
    if run_dir.exists():
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    started = time.monotonic()
    code, samples = run_sampled(cmd, cwd=ROOT, env={**os.environ, **environment})
    wall = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"{name} failed ({code}): {' '.join(cmd)}")
    records = [json.loads(x) for x in (run_dir / "curve.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    # the run stops between two log lines: the final totals are in last.pt
    progress = read_checkpoint(run_dir / "last.pt")["training"]["progress"]
    return {
        "tgt_tok_s_logged_median": round(
            statistics.median(r["tgt_tokens_per_s"] for r in train[1:]), 1
        ),
        "tgt_tok_s_whole_run": round(progress["target_tokens"] / wall, 1),
        "steps": progress["step"],
        "wall_s": round(wall, 1),
        "peak_rss_mib": memory_summary(samples)["peak_rss_mib"],
    }


def run_peer(name: str, minutes: float, peers_dir: Path) -> dict:
    env = {**os.environ, "PEERS_DIR": str(peers_dir), "TRAIN_SECONDS": str(int(minutes * 60))}
    script = {"onmt": "run_onmt.sh", "joey": "run_joey.sh"}[name]
    subprocess.run(["bash", str(PEER_SCRIPTS / script)], check=True, env=env)
    collected = subprocess.run(
        [
            str(peers_dir / "venv-joey" / "bin" / "python"),
            str(PEER_SCRIPTS / "collect.py"),
            str(peers_dir),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    stats = json.loads(collected)[name]
    logged = stats.get("train_tok_s_mean_of_log_lines")
    return {
        "tgt_tok_s_logged_mean": logged and round(logged, 1),
        "tgt_tok_s_whole_run": stats.get("train_tok_s_end_to_end")
        and round(stats["train_tok_s_end_to_end"], 1),
        "params": stats.get("params"),
        "epochs": stats.get("epochs_completed"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=5.0, help="training budget per system")
    ap.add_argument("--systems", default="ours,ours-2proc,onmt,joey")
    ap.add_argument(
        "--peers-dir", type=Path, default=Path(os.environ.get("PEERS_DIR", "/tmp/peers"))
    )
    ap.add_argument("--out", type=Path, default=Path("runs/bench_speed"))
    ap.add_argument("--repeats", type=int, default=1, help="run the systems in turn N times")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "minutes_per_system": args.minutes,
        "machine": os.uname().nodename,
        "cpu_count": os.cpu_count(),
        "processor": describe(),
        "date": time.strftime("%Y-%m-%d"),
    }
    systems = args.systems.split(",")
    runs: dict[str, list[dict]] = {name: [] for name in systems}
    for repeat in range(args.repeats):
        for name in systems:
            print(f"=== [{repeat + 1}/{args.repeats}] {name}", flush=True)
            run = (
                run_ours(name, args.minutes, args.out)
                if name in OURS
                else run_peer(name, args.minutes, args.peers_dir)
            )
            runs[name].append(run)
            print(json.dumps(run), flush=True)
        results["runs"] = runs
        results["summary"] = summarize(runs)
        (args.out / "speed.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results["summary"], indent=1))


def _logged(run: dict) -> float | None:
    """Logged tokens/s of a run: our log windows' median, the peers' mean of log lines."""
    return run.get("tgt_tok_s_logged_median") or run.get("tgt_tok_s_logged_mean")


def _whole(run: dict) -> float | None:
    return run.get("tgt_tok_s_whole_run")


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Per system: tokens/s of every repetition and their median; for ours, the ratio
    to the first peer in the list, per repetition and its median (logged, whole run)."""
    peer = next((name for name in runs if name not in OURS), None)
    summary: dict = {}
    for name, done in runs.items():
        entry: dict = {}
        for key, get in (("logged", _logged), ("whole_run", _whole)):
            values = [v for v in map(get, done) if v]
            entry[f"tgt_tok_s_{key}"] = values
            entry[f"tgt_tok_s_{key}_median"] = _median(values)
            if name in OURS and peer is not None:
                # zip stops at the shorter list: the last round may be partial
                pairs = [(get(o), get(p)) for o, p in zip(done, runs[peer], strict=False)]
                ratios = [round(a / b, 3) for a, b in pairs if a and b]
                entry[f"ratio_to_{peer}_{key}"] = ratios
                entry[f"ratio_to_{peer}_{key}_median"] = _median(ratios)
        summary[name] = entry
    return summary


if __name__ == "__main__":
    main()
