"""Quality benchmark: train the shipped en->de config for a wall-clock budget, then
score test_2016_flickr at beam 5 with sacreBLEU (cased detokenized and -lc).

The run is split in two invocations: ``--snapshot-minutes`` of training, a copy of
best.pt taken then (scored like the final model), then ``--resume`` for the rest.
Resuming is exact, so the two halves are the same run as one uninterrupted one.

    python benchmarks/quality.py --minutes 60 --snapshot-minutes 25 --out runs/bench_quality

The training commands' resident memory is sampled every second (peak and per-minute
maxima in the results; the allocator is NMT_MALLOC's, see ``nmt.process``).

Writes OUT/results.json, OUT/curve.png and prints a Markdown table of the curve.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from machine import describe
from nmt_commands import ROOT, Samples, evaluate, memory_summary, run_sampled

from nmt.process import chosen_allocator

TEST_SPLIT = "test_2016_flickr"


def train(*args: str, out: Path, offset_s: float = 0.0) -> Samples:
    """``nmt train`` with its resident memory sampled every second, the samples'
    seconds shifted by ``offset_s`` (a continued run); its output is printed."""
    cmd = [sys.executable, "-m", "nmt.cli", "train", *args]
    print("+", " ".join(cmd), flush=True)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stdout:
        code, samples = run_sampled(cmd, cwd=ROOT, stdout=stdout)
        stdout.seek(0)
        sys.stdout.write(stdout.read())
    if code != 0:
        raise SystemExit(f"training failed ({code}); its log is in {out}")
    return [(seconds + offset_s, rss) for seconds, rss in samples]


def curve_table(curve: Path) -> str:
    rows = ["| step | epoch | minutes | valid BLEU (greedy) | valid ppl |", "|---|---|---|---|---|"]
    for line in curve.read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == "valid":
            cells = [
                r["step"],
                r["epoch"],
                f"{r['minutes']:.1f}",
                f"{r['bleu']:.2f}",
                f"{r['ppl']:.2f}",
            ]
            rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows)


def plot(curve: Path, png: Path, marks: list[tuple[float, float, str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    valid = [json.loads(x) for x in curve.read_text().splitlines()]
    valid = [r for r in valid if r["kind"] == "valid"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        [r["minutes"] for r in valid],
        [r["bleu"] for r in valid],
        marker="o",
        label="val BLEU (greedy)",
    )
    for x, y, label in marks:
        ax.scatter([x], [y], marker="*", s=120, zorder=3, label=label)
    ax.set_xlabel("training minutes (2-core CPU)")
    ax.set_ylabel("BLEU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default="configs/multi30k_en_de.yaml")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_quality"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data/multi30k"))
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--snapshot-minutes", type=float, default=25)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument(
        "--report-only", action="store_true", help="only score and plot an existing run"
    )
    args = ap.parse_args()
    out = args.out
    common = ["--config", args.config, "--output-dir", str(out)]
    results: dict = {"config": args.config, "minutes": args.minutes, "beam": args.beam}
    results["machine"] = describe()
    results["allocator"] = chosen_allocator()
    if not args.report_only:
        first = train(*common, "--max-minutes", str(args.snapshot_minutes), out=out)
        shutil.copy(out / "best.pt", out / f"best_{args.snapshot_minutes:g}min.pt")
        rest = str(args.minutes - args.snapshot_minutes)
        offset = first[-1][0] if first else 0.0
        second = train(*common, "--resume", "--max-minutes", rest, out=out, offset_s=offset)
        results["memory"] = memory_summary(first + second)
    for name in (f"best_{args.snapshot_minutes:g}min.pt", "best.pt"):
        results[name] = evaluate(out / name, args.data, TEST_SPLIT, ("en", "de"), args.beam)
        results[name + ":greedy"] = evaluate(out / name, args.data, TEST_SPLIT, ("en", "de"), 1)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    final, snap = results["best.pt"], results[f"best_{args.snapshot_minutes:g}min.pt"]
    plot(
        out / "curve.jsonl",
        out / "curve.png",
        [
            (
                args.snapshot_minutes,
                snap["bleu"]["score"],
                f"test beam {args.beam} at {args.snapshot_minutes:g} min",
            ),
            (
                args.minutes,
                final["bleu"]["score"],
                f"test beam {args.beam} at {args.minutes:g} min",
            ),
        ],
    )
    print(json.dumps(results, indent=1))
    print(curve_table(out / "curve.jsonl"))


if __name__ == "__main__":
    main()
