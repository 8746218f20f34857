"""Ablation of training levers: each variant trains the shipped config for the same
wall-clock budget and is scored on the validation split (never on a test set).

A variant is ``name`` (the shipped config as it is) or ``name=KEY=VALUE[;KEY=VALUE...]``
with ``--set`` overrides (a list value keeps its commas inside brackets:
``betas=train.adam_betas=[0.9,0.98]``):

    python benchmarks/ablation.py --minutes 25 --variants \\
        'base,ema=train.weight_average_decay=0.999,sampling=tokenizer.sampling_alpha=0.5,both=train.weight_average_decay=0.999;tokenizer.sampling_alpha=0.5'

``--device cuda`` trains and scores them on a GPU: with ``train.max_steps`` set to what
the CPU's budget holds, a GPU sorts levers by validation BLEU at the CPU's step count in
a minute each (docs/benchmarks.md, "Levers at 655 steps on a GPU").

Variants run one after the other (``--rounds`` alternates them again). Each is scored
by its best validation BLEU during training (greedy, as logged) and by its best.pt
on the whole validation split at beam 5 (sacreBLEU cased and ``-lc``). Writes
OUT/ablation.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import time
from pathlib import Path

from machine import describe
from nmt_commands import ROOT, evaluate, nmt

from nmt.checkpoint import read_checkpoint


def split_variants(specs: str) -> list[str]:
    """Split at the commas outside brackets, so that a value may be a list: ``[0.9,0.98]``."""
    return [spec for spec in re.split(r",(?![^\[]*\])", specs) if spec]


def parse_variant(spec: str) -> tuple[str, list[str]]:
    """``name`` or ``name=KEY=VALUE;KEY=VALUE`` -> (name, overrides)."""
    name, _, overrides = spec.partition("=")
    return name, [o for o in overrides.split(";") if o]


def run_variant(name: str, overrides: list[str], args: argparse.Namespace, out: Path) -> dict:
    """Train one variant for the budget and score its best.pt on the validation split."""
    run_dir = out / name
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    train = ["train", "--config", args.config, "--output-dir", str(run_dir)]
    train += ["--device", args.device, "--set", f"data.dir={args.data}"]
    train += ["--max-minutes", str(args.minutes)]
    for override in overrides:
        train += ["--set", override]
    started = time.monotonic()
    nmt(*train)
    wall = time.monotonic() - started
    records = [json.loads(x) for x in (run_dir / "curve.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["kind"] == "valid"]
    speeds = [r["tgt_tokens_per_s"] for r in records if r["kind"] == "train"][1:]
    langs = (args.src, args.tgt)
    scores = evaluate(run_dir / "best.pt", args.data, "val", langs, beam=5, device=args.device)
    return {
        "variant": name,
        "overrides": overrides,
        "valid_bleu_greedy_best": max(r["bleu"] for r in valid),
        "valid_bleu_beam5": scores["bleu"]["score"],
        "valid_bleu_beam5_lc": scores["bleu_lc"]["score"],
        "steps": read_checkpoint(run_dir / "last.pt")["step"],
        "tgt_tok_s_logged_median": round(statistics.median(speeds), 1) if speeds else None,
        "wall_s": round(wall, 1),
    }


def table(runs: list[dict]) -> str:
    rows = [
        "| variant | overrides | val BLEU beam 5 (cased / -lc) | best val BLEU greedy "
        "| steps | tok/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        overrides = ", ".join(f"`{o}`" for o in r["overrides"]) or "shipped config"
        rows.append(
            f"| {r['variant']} | {overrides} | {r['valid_bleu_beam5']:.2f} / "
            f"{r['valid_bleu_beam5_lc']:.2f} | {r['valid_bleu_greedy_best']:.2f} | "
            f"{r['steps']} | {r['tgt_tok_s_logged_median']} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--variants", required=True, help="comma-separated variant specs")
    ap.add_argument("--minutes", type=float, default=25.0, help="training budget per variant")
    ap.add_argument("--rounds", type=int, default=1, help="run the variants in turn N times")
    ap.add_argument("--config", default="configs/multi30k_en_de.yaml")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    ap.add_argument("--src", default="en")
    ap.add_argument("--tgt", default="de")
    ap.add_argument("--out", type=Path, default=ROOT / "runs/bench_ablation")
    ap.add_argument("--device", default="cpu", help="trains and scores on it (cuda: a GPU)")
    args = ap.parse_args()
    variants = [parse_variant(spec) for spec in split_variants(args.variants)]
    names = [name for name, _ in variants]
    if len(set(names)) != len(names):
        ap.error(f"variant names must differ: {names}")
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": describe(), "minutes": args.minutes, "runs": []}
    for round_number in range(args.rounds):
        for name, overrides in variants:
            label = name if args.rounds == 1 else f"{name}_r{round_number + 1}"
            result["runs"].append(run_variant(label, overrides, args, args.out))
            (args.out / "ablation.json").write_text(json.dumps(result, indent=1))
    print(table(result["runs"]))


if __name__ == "__main__":
    main()
