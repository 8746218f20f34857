"""Quality benchmark: train a shipped config (en->de by default) for a wall-clock
budget, then score test_2016_flickr at beam 5 with sacreBLEU (cased detokenized and
-lc) for the config's languages.

The run is one budget (``--minutes``, which its learning-rate cooldown follows) trained
in two invocations: ``--stop-after-minutes`` ends the first at ``--snapshot-minutes``,
a copy of best.pt is taken then (scored like the final model), and ``--resume`` trains
what is left. Resuming is exact, so the two halves are the same run as one
uninterrupted one. ``--snapshot-minutes 0`` trains in one invocation.

    python benchmarks/quality.py --minutes 60 --snapshot-minutes 25 --out runs/bench_quality
    python benchmarks/quality.py --config configs/multi30k_de_en.yaml --snapshot-minutes 0 \\
        --out runs/bench_quality_de_en
    python benchmarks/quality.py --set data.tgt_lang=fr --snapshot-minutes 0 \\
        --out runs/bench_quality_en_fr

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
from training.config import load_config

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
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, as nmt train --set (e.g. data.tgt_lang=fr)",
    )
    ap.add_argument(
        "--report-only", action="store_true", help="only score and plot an existing run"
    )
    args = ap.parse_args()
    out = args.out
    data = load_config(Path(args.config), args.overrides).data
    langs = (data.src_lang, data.tgt_lang)
    common = ["--config", args.config, "--output-dir", str(out), "--max-minutes", str(args.minutes)]
    for override in args.overrides:
        common += ["--set", override]
    results: dict = {"config": args.config, "overrides": args.overrides, "langs": langs}
    results |= {"minutes": args.minutes, "beam": args.beam, "machine": describe()}
    results["allocator"] = chosen_allocator()
    snapshot = f"best_{args.snapshot_minutes:g}min.pt" if args.snapshot_minutes else None
    if not args.report_only:
        samples: Samples = []
        if snapshot is not None:
            samples = train(*common, "--stop-after-minutes", str(args.snapshot_minutes), out=out)
            shutil.copy(out / "best.pt", out / snapshot)
        offset = samples[-1][0] if samples else 0.0
        resume = ["--resume"] if snapshot is not None else []
        samples += train(*common, *resume, out=out, offset_s=offset)
        results["memory"] = memory_summary(samples)
    for name in [n for n in (snapshot, "best.pt") if n is not None]:
        results[name] = evaluate(out / name, args.data, TEST_SPLIT, langs, args.beam)
        results[name + ":greedy"] = evaluate(out / name, args.data, TEST_SPLIT, langs, 1)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    marks = [(args.snapshot_minutes, snapshot)] if snapshot is not None else []
    marks.append((args.minutes, "best.pt"))
    plot(
        out / "curve.jsonl",
        out / "curve.png",
        [
            (minutes, results[name]["bleu"]["score"], f"test beam {args.beam} at {minutes:g} min")
            for minutes, name in marks
        ],
    )
    print(json.dumps(results, indent=1))
    print(curve_table(out / "curve.jsonl"))


if __name__ == "__main__":
    main()
