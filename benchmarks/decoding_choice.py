"""Choose decoding settings on the validation split: beam size, length normalization
and checkpoint ensembles of one training run, each scored on val (never on a test
set) with its decoding time.

    python benchmarks/decoding_choice.py --run runs/bench_ablation/base \\
        --sets best=best.pt 'best+last=best.pt,last.pt' --beams 5,10 --alphas 0.6,1.0

Every set of checkpoints (``NAME=FILE[,FILE...]``, files in ``--run``; several files
decode as an ensemble) is decoded at every beam size and alpha. Writes
OUT/decoding_choice.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from machine import describe
from nmt_commands import ROOT, evaluate


def parse_set(spec: str, run: Path) -> tuple[str, list[Path]]:
    """``name=a.pt,b.pt`` -> (name, [run/a.pt, run/b.pt])."""
    name, _, files = spec.partition("=")
    if not files:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected NAME=FILE[,FILE...]")
    return name, [run / f for f in files.split(",")]


def table(rows: list[dict]) -> str:
    lines = [
        "| checkpoints | beam | alpha | val BLEU (cased / -lc) | chrF | decoding s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['beam']} | {r['alpha']:g} | {r['bleu']:.2f} / "
            f"{r['bleu_lc']:.2f} | {r['chrf']:.2f} | {r['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--run", type=Path, required=True, help="a training run's directory")
    ap.add_argument("--sets", nargs="+", default=["best=best.pt"], help="NAME=FILE[,FILE...]")
    ap.add_argument("--beams", default="5", help="comma-separated beam sizes")
    ap.add_argument("--alphas", default="1.0", help="comma-separated length exponents")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    ap.add_argument("--src", default="en")
    ap.add_argument("--tgt", default="de")
    ap.add_argument("--out", type=Path, default=None, help="default: the run's directory")
    args = ap.parse_args()
    sets = [parse_set(spec, args.run) for spec in args.sets]
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": describe(), "run": str(args.run), "split": "val", "rows": []}
    for name, paths in sets:
        for beam in (int(b) for b in args.beams.split(",")):
            for alpha in (float(a) for a in args.alphas.split(",")):
                started = time.monotonic()
                scores = evaluate(paths, args.data, "val", (args.src, args.tgt), beam, alpha)
                result["rows"].append(
                    {
                        "set": name,
                        "checkpoints": [str(p) for p in paths],
                        "beam": beam,
                        "alpha": alpha,
                        "bleu": scores["bleu"]["score"],
                        "bleu_lc": scores["bleu_lc"]["score"],
                        "chrf": scores["chrf"]["score"],
                        "wall_s": round(time.monotonic() - started, 1),
                    }
                )
                (out / "decoding_choice.json").write_text(json.dumps(result, indent=1))
    print(table(result["rows"]))


if __name__ == "__main__":
    main()
