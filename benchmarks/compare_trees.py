"""Speed of two checkouts of this project, alternated on the same machine in one run.

    git worktree add /tmp/before <commit>
    python benchmarks/compare_trees.py --before /tmp/before --after . --rounds 3

For each round, in turn for BEFORE and AFTER (each run from its own tree, with this
interpreter): trains the shipped config for ``--train-minutes`` (as
``benchmarks/train_speed.py`` does for "ours": median of the logged target tokens/s,
first window dropped), then translates the first ``--sentences`` of test_2016_flickr
with ``--checkpoint`` at beam 5 in fp32 and with int8 (``nmt translate``'s own
sentences/s, load excluded). Alternating puts the machine's drift on both alike.
Prints medians per tree and AFTER/BEFORE ratios; writes OUT/compare.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def train_speed(tree: Path, minutes: float, run_dir: Path) -> float:
    """Median logged target tokens/s of ``nmt train`` run from ``tree``."""
    overrides = [
        "train.label_smoothing=0",
        "train.valid_every=1000000",
        "train.keep_last=0",
        "train.log_every=25",
        "train.precision=auto",
    ]
    command = [sys.executable, "-m", "nmt.cli", "train", "--config", "configs/multi30k_en_de.yaml"]
    command += ["--output-dir", str(run_dir), "--max-minutes", str(minutes)]
    for override in overrides:
        command += ["--set", override]
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    subprocess.run(command, cwd=tree, check=True, capture_output=True)
    records = [json.loads(x) for x in (run_dir / "curve.jsonl").read_text().splitlines()]
    logged = [r["tgt_tokens_per_s"] for r in records if r["kind"] == "train"][1:]
    return statistics.median(logged)


def decode_speed(tree: Path, checkpoint: Path, source: Path, quantize: str | None) -> float:
    """Sentences/s that ``nmt translate`` run from ``tree`` logs (beam 5, batch 64)."""
    command = [sys.executable, "-m", "nmt.cli", "translate", "--checkpoint", str(checkpoint)]
    command += ["--input", str(source), "--output", "/dev/null", "--device", "cpu"]
    command += ["--beam-size", "5"] + (["--quantize", quantize] if quantize else [])
    done = subprocess.run(command, cwd=tree, check=True, capture_output=True, text=True)
    match = re.search(r"\(([\d.]+) sentences/s", done.stderr)
    if match is None:
        raise RuntimeError(f"no throughput in the log of nmt translate:\n{done.stderr}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-minutes", type=float, default=2.0)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench_compare")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from nmt.text_files import read_lines

    lines = read_lines(args.data / "test_2016_flickr.en.gz")[: args.sentences]
    source = args.out / "sentences.en"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    measures = ("train_tok_s", "fp32_sent_s", "int8_sent_s")
    results: dict[str, dict[str, list[float]]] = {t: {m: [] for m in measures} for t in trees}
    checkpoint = args.checkpoint.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for name, tree in trees.items():
                r = results[name]
                r["train_tok_s"].append(train_speed(tree, args.train_minutes, Path(scratch) / name))
                r["fp32_sent_s"].append(decode_speed(tree, checkpoint, source, None))
                r["int8_sent_s"].append(decode_speed(tree, checkpoint, source, "int8"))
                print(round_ + 1, name, {m: v[-1] for m, v in r.items()}, flush=True)
    medians = {t: {m: statistics.median(v) for m, v in r.items()} for t, r in results.items()}
    summary = {"runs": results, "medians": medians, "trees": {t: str(p) for t, p in trees.items()}}
    (args.out / "compare.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print("\n| measure | before (median) | after (median) | after / before |")
    print("|---|---|---|---|")
    for m in measures:
        b, a = medians["before"][m], medians["after"][m]
        print(f"| {m} | {b:.1f} | {a:.1f} | {a / b:.3f} |")


if __name__ == "__main__":
    main()
