"""Decoding speed side by side with OpenNMT-py 3.5.1, in one run, on test_2016_flickr.

Each repetition runs every system once, one after the other, as a whole command
(interpreter start, imports, checkpoint load, translation, writing the output):

- OpenNMT-py: ``onmt_translate`` on the peers' SentencePiece-encoded source (batch 64
  sentences, ``-max_length 100``), the model trained by ``../shared/bench/peers/run_onmt.sh``;
- this project: ``nmt translate`` on the raw source (it segments the text itself),
  with the given checkpoint in fp32, bf16 autocast and dynamic int8.

    python benchmarks/decode_vs_onmt.py --checkpoint runs/bench_q25/best.pt \\
        --onmt-model /tmp/peers/models/onmt/model_step_N.pt --repeats 3

Reported per system and beam size (medians over the repetitions): whole-command
seconds and sentences/s, the tool's own timer (OpenNMT-py: "Time w/o python interpreter
load/terminate", which includes loading the checkpoint; this project: load +
translation as logged by ``nmt translate``), and detokenized cased BLEU (sacreBLEU 13a).
Writes OUT/decode_vs_onmt.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import sacrebleu
import sentencepiece as spm
from machine import describe

from nmt.text_files import read_lines

ROOT = Path(__file__).resolve().parent.parent
ONMT_TIMER = re.compile(r"Time w/o python interpreter load/terminate:\s*([0-9.]+)")
OUR_TIMER = re.compile(r"loaded .* in ([0-9.]+) s; translated \d+ sentences in ([0-9.]+) s")
OURS = {"ours-fp32": [], "ours-bf16": ["--precision", "bf16"], "ours-int8": ["--quantize", "int8"]}


def run_timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run ``cmd`` to completion; its wall time and its combined output."""
    started = time.perf_counter()
    done = subprocess.run(
        cmd, env=env, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-3000:]}")
    return seconds, done.stdout


def run_onmt(
    args: argparse.Namespace, beam: int, out: Path, sp: spm.SentencePieceProcessor
) -> tuple[float, float, list[str]]:
    """Whole-command seconds, OpenNMT-py's own timer, hypotheses detokenized by ``sp``
    (the peers' SentencePiece model)."""
    pieces = out / f"onmt_b{beam}.sp"
    # OpenNMT-py 3.5.1 checkpoints hold an argparse.Namespace; torch's documented opt-out
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    cmd = [
        str(args.peers_dir / "venv-onmt/bin/onmt_translate"),
        "-model", str(args.onmt_model),
        "-src", str(args.peers_dir / "data/test_2016_flickr.sp.en"),
        "-output", str(pieces),
        "-beam_size", str(beam),
        "-batch_size", "64",
        "-batch_type", "sents",
        "-max_length", "100",
        "-seed", "42",
    ]  # fmt: skip
    seconds, output = run_timed(cmd, env)
    timer = ONMT_TIMER.search(output)
    hyps = [sp.decode(line.split()) for line in read_lines(pieces)]
    return seconds, float(timer.group(1)) if timer else float("nan"), hyps


def run_ours(
    args: argparse.Namespace, name: str, beam: int, source: Path, out: Path
) -> tuple[float, float, list[str]]:
    """Whole-command seconds, load + translation as logged, hypotheses."""
    hyps = out / f"{name}_b{beam}.txt"
    cmd = [
        sys.executable, "-m", "nmt.cli", "translate",
        "--checkpoint", str(args.checkpoint),
        "--input", str(source),
        "--output", str(hyps),
        "--beam-size", str(beam),
        "--batch-size", "64",
        "--device", "cpu",
        *OURS[name],
    ]  # fmt: skip
    seconds, output = run_timed(cmd)
    timer = OUR_TIMER.search(output)
    own = float(timer.group(1)) + float(timer.group(2)) if timer else float("nan")
    return seconds, own, read_lines(hyps)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", type=Path, required=True, help="this project's model")
    ap.add_argument("--onmt-model", type=Path, required=True, help="OpenNMT-py model_step_N.pt")
    ap.add_argument(
        "--peers-dir", type=Path, default=Path(os.environ.get("PEERS_DIR", "/tmp/peers"))
    )
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    ap.add_argument("--systems", default="onmt," + ",".join(OURS))
    ap.add_argument("--beams", default="5,1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "runs/bench_decode_vs_onmt")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    source = args.out / "test_2016_flickr.en"
    source.write_text("\n".join(read_lines(args.data / "test_2016_flickr.en.gz")) + "\n")
    refs = read_lines(args.data / "test_2016_flickr.de.gz")
    systems, beams = args.systems.split(","), [int(b) for b in args.beams.split(",")]
    peer_sp = spm.SentencePieceProcessor(model_file=str(args.peers_dir / "data/spm8k.model"))

    runs: dict[str, list[tuple[float, float, float]]] = {}
    for repeat in range(args.repeats):
        for beam in beams:
            for name in systems:
                if name == "onmt":
                    whole, own, hyps = run_onmt(args, beam, args.out, peer_sp)
                else:
                    whole, own, hyps = run_ours(args, name, beam, source, args.out)
                bleu = sacrebleu.corpus_bleu(hyps, [refs]).score
                runs.setdefault(f"{name} beam {beam}", []).append((whole, own, bleu))
                print(
                    f"[{repeat + 1}/{args.repeats}] {name} beam {beam}: whole {whole:.2f} s, "
                    f"own timer {own:.2f} s, BLEU {bleu:.2f}",
                    flush=True,
                )

    n = len(refs)
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": os.uname().nodename,
        "cpu_count": os.cpu_count(),
        "processor": describe(seconds=0.5),
        "checkpoint": str(args.checkpoint),
        "onmt_model": str(args.onmt_model),
        "repeats": args.repeats,
        "systems": {},
    }
    print("\n| system | beam | whole command s (sent/s) | own timer s (sent/s) | BLEU |")
    print("|---|---|---|---|---|")
    for key, values in runs.items():
        whole = statistics.median(v[0] for v in values)
        own = statistics.median(v[1] for v in values)
        bleu = values[-1][2]
        result["systems"][key] = {
            "whole_s_median": round(whole, 2),
            "whole_s_all": [round(v[0], 2) for v in values],
            "whole_sent_per_s": round(n / whole, 1),
            "own_timer_s_median": round(own, 2),
            "own_sent_per_s": round(n / own, 1),
            "bleu": round(bleu, 2),
        }
        name, _, beam_size = key.rpartition(" beam ")
        print(
            f"| {name} | {beam_size} | {whole:.2f} ({n / whole:.1f}) | {own:.2f} ({n / own:.1f}) "
            f"| {bleu:.2f} |"
        )
    (args.out / "decode_vs_onmt.json").write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out / 'decode_vs_onmt.json'}")


if __name__ == "__main__":
    main()
