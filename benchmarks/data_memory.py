"""Peak memory of training-data loading as the corpus grows 10x (streaming vs in memory).

    python benchmarks/data_memory.py --out runs/bench_data_memory --chunk-pairs 10000

Builds a 10x corpus by repeating Multi30k's training split, then, in a fresh process
per case, prepares the data and forms every batch of one epoch as training would
(``make_batch``), and reports the process's peak resident memory. The SentencePiece
model is trained on the first 29,000 pairs when streaming; in memory it is trained on
the whole split, as a non-streaming run does. Writes OUT/memory.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASE = r"""
import json, resource, sys, time
from training.batching import make_batch
from training.config import load_config
from training.data import prepare_data
from training.streaming import epoch_batches

config = load_config(sys.argv[1], sys.argv[2:])
start = time.monotonic()
data = prepare_data(config)
src_tok, tgt_tok = data.src_tokenizer, data.tgt_tokenizer
batches, tokens = 0, 0
source, _ = epoch_batches(config, data.train, src_tok, tgt_tok, epoch=0)
for examples in source:
    batch = make_batch(examples, tgt_tok.pad_id, tgt_tok.bos_id, tgt_tok.eos_id)
    batches += 1
    tokens += batch.n_tokens
print(json.dumps({
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "batches": batches, "target_tokens": tokens, "seconds": round(time.monotonic() - start, 1),
}))
"""


def build_corpus(source: Path, target: Path, repeat: int, langs: tuple[str, str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        lines = gzip.open(source / f"train.{lang}.gz", "rt", encoding="utf-8").read()
        with gzip.open(target / f"train.{lang}.gz", "wt", encoding="utf-8", compresslevel=1) as f:
            for _ in range(repeat):
                f.write(lines)
        shutil.copy(source / f"val.{lang}.gz", target / f"val.{lang}.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench_data_memory")
    parser.add_argument("--config", type=Path, default=ROOT / "configs/multi30k_en_de.yaml")
    parser.add_argument(
        "--chunk-pairs",
        type=int,
        default=10_000,
        help="data.chunk_pairs when streaming (below the 1x corpus, so both sizes stream)",
    )
    args = parser.parse_args()
    langs = ("en", "de")
    results = []
    for repeat in (1, 10):
        corpus = args.out / f"corpus_x{repeat}"
        if not (corpus / "train.de.gz").exists():
            build_corpus(args.data, corpus, repeat, langs)
        for streaming in (True, False):
            overrides = [
                f"data.dir={corpus}",
                f"data.streaming={str(streaming).lower()}",
                "tokenizer.sample_pairs=29000",
                f"data.chunk_pairs={args.chunk_pairs}",
                f"output_dir={args.out / 'run'}",
            ]
            command = [sys.executable, "-c", CASE, str(args.config), *overrides]
            print("+", " ".join(command[3:]), flush=True)
            out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
            row = {
                "repeat": repeat,
                "streaming": streaming,
                **json.loads(out.stdout.splitlines()[-1]),
            }
            print(row, flush=True)
            results.append(row)
    growth = {
        mode: by[10]["peak_rss_mib"] / by[1]["peak_rss_mib"]
        for mode, by in (
            (m, {r["repeat"]: r for r in results if r["streaming"] == (m == "streaming")})
            for m in ("streaming", "in memory")
        )
    }
    (args.out / "memory.json").write_text(
        json.dumps({"cases": results, "growth_10x": growth}, indent=1), encoding="utf-8"
    )
    print("\n| corpus | mode | peak RSS MiB | batches | seconds |\n|---|---|---|---|---|")
    for r in results:
        mode = "streaming" if r["streaming"] else "in memory"
        print(
            f"| {r['repeat']}x | {mode} | {r['peak_rss_mib']} | {r['batches']} | {r['seconds']} |"
        )


if __name__ == "__main__":
    main()
