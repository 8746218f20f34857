"""Speed of two checkouts of this project, alternated on the same machine in one run.

    git worktree add /tmp/before <commit>
    python benchmarks/compare_trees.py --before /tmp/before --after . --rounds 3

For each round, in turn for BEFORE and AFTER (each run from its own tree, with this
interpreter): trains the shipped config for ``--train-minutes`` (as
``benchmarks/train_speed.py`` does for "ours": median of the logged target tokens/s,
first window dropped), then translates the first ``--sentences`` of test_2016_flickr
with ``--checkpoint`` at beam 5 in fp32 and with int8 (a loaded model, warmed up,
decoding them ``--passes`` times: the median's sentences/s). Alternating puts the
machine's drift on both alike.
Prints medians per tree and AFTER/BEFORE ratios; writes OUT/compare.json.
"""

from __future__ import annotations

import argparse
import json
import os
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


# Run in each tree (its own ``nmt``): load, warm up, then time ``passes`` decodes.
DECODE = """
import json, statistics, sys, time
from nmt.search import SearchConfig
from nmt.translator import Translator
checkpoint, source, quantize, passes = sys.argv[1:5]
lines = open(source, encoding="utf-8").read().splitlines()
t = Translator.from_checkpoint(checkpoint, "cpu", None if quantize == "none" else quantize)
cfg = SearchConfig(beam_size=5, return_attention=False)
t.translate(lines[:64], cfg)
seconds = []
for _ in range(int(passes)):
    start = time.perf_counter()
    t.translate(lines, cfg)
    seconds.append(time.perf_counter() - start)
print(json.dumps(len(lines) / statistics.median(seconds)))
"""


def decode_speed(
    tree: Path, checkpoint: Path, source: Path, quantize: str | None, passes: int
) -> float:
    """Sentences/s of beam-5 decoding (batch 64) with ``tree``'s code: the median of
    ``passes`` decodes of the sentences by one loaded model."""
    command = [sys.executable, "-c", DECODE, str(checkpoint), str(source)]
    command += [quantize or "none", str(passes)]
    done = subprocess.run(
        command, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-minutes", type=float, default=2.0, help="0: decoding only")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=3, help="decodes per loaded model")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench_compare")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from nmt.text_files import read_lines

    lines = read_lines(args.data / "test_2016_flickr.en.gz")[: args.sentences]
    source = (args.out / "sentences.en").resolve()  # the commands run in other folders
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    measures = ("train_tok_s", "fp32_sent_s", "int8_sent_s")
    results: dict[str, dict[str, list[float]]] = {t: {m: [] for m in measures} for t in trees}
    checkpoint = args.checkpoint.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for name, tree in trees.items():
                r = results[name]
                if args.train_minutes > 0:
                    run_dir = Path(scratch) / name
                    r["train_tok_s"].append(train_speed(tree, args.train_minutes, run_dir))
                for key, quantize in (("fp32_sent_s", None), ("int8_sent_s", "int8")):
                    r[key].append(decode_speed(tree, checkpoint, source, quantize, args.passes))
                print(round_ + 1, name, {m: v[-1] for m, v in r.items() if v}, flush=True)
    medians = {t: {m: statistics.median(v) for m, v in r.items() if v} for t, r in results.items()}
    summary = {"runs": results, "medians": medians, "trees": {t: str(p) for t, p in trees.items()}}
    (args.out / "compare.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print("\n| measure | before (median) | after (median) | after / before |")
    print("|---|---|---|---|")
    for m in [m for m in measures if m in medians["after"]]:
        b, a = medians["before"][m], medians["after"][m]
        print(f"| {m} | {b:.1f} | {a:.1f} | {a / b:.3f} |")


if __name__ == "__main__":
    main()
