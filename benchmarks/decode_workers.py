"""Two decode workers as threads of one process against two processes.

    python benchmarks/decode_workers.py --checkpoint runs/bench_quality/best.pt \\
        --sentences 560 --batch 14

Decodes the first ``--sentences`` test_2016_flickr sentences in batches of ``--batch``
at beam 5 with one PyTorch thread per worker: by one worker alone, by two threads of one
process (as ``nmt serve``'s decode workers), and by two processes started together,
each on half of the batches. Prints sentences/s of each. The gap between the last two
is what the workers lose to sharing one interpreter.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from nmt.search import SearchConfig
from nmt.text_files import read_lines
from nmt.translator import Translator

ROOT = Path(__file__).resolve().parent.parent


def batches(args: argparse.Namespace, translator: Translator) -> list[list[list[int]]]:
    sentences = read_lines(args.data / "test_2016_flickr.en.gz")[: args.sentences]
    ids = translator.src_tok.encode(sentences)
    return [ids[i : i + args.batch] for i in range(0, len(ids), args.batch)]


def decode_all(translator: Translator, work: list[list[list[int]]]) -> None:
    cfg = SearchConfig(beam_size=5, return_attention=False)
    for batch in work:
        translator.translate_ids(batch, cfg, batch_size=len(batch))


def in_process(args: argparse.Namespace) -> dict[str, float]:
    translator = Translator.from_checkpoint(args.checkpoint, "cpu", args.quantize)
    work = batches(args, translator)
    total = sum(len(b) for b in work)
    start = time.perf_counter()
    decode_all(translator, work)
    one = total / (time.perf_counter() - start)
    threads = [threading.Thread(target=decode_all, args=(translator, work[i::2])) for i in (0, 1)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"one worker": one, "two threads": total / (time.perf_counter() - start)}


def two_processes(args: argparse.Namespace) -> float:
    at = time.time() + 15  # both load the model first, then start together
    command = [sys.executable, __file__, "--checkpoint", str(args.checkpoint)]
    command += ["--sentences", str(args.sentences), "--batch", str(args.batch)]
    command += ["--data", str(args.data)] + (["--quantize", args.quantize] if args.quantize else [])
    children = [
        subprocess.Popen([*command, "--part", str(i), "--at", str(at)], stdout=subprocess.PIPE)
        for i in (0, 1)
    ]
    rates = [float(child.communicate()[0]) for child in children]
    return sum(rates)


def part(args: argparse.Namespace) -> None:
    translator = Translator.from_checkpoint(args.checkpoint, "cpu", args.quantize)
    work = batches(args, translator)[args.part :: 2]
    time.sleep(max(0.0, args.at - time.time()))
    start = time.perf_counter()
    decode_all(translator, work)
    print(sum(len(b) for b in work) / (time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--sentences", type=int, default=560)
    parser.add_argument("--batch", type=int, default=14)
    parser.add_argument("--quantize", choices=["int8"])
    parser.add_argument("--part", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part is not None:
        part(args)
        return
    rates = in_process(args)
    rates["two processes"] = two_processes(args)
    for name, rate in rates.items():
        print(f"{name:14s} {rate:6.1f} sentences/s")


if __name__ == "__main__":
    main()
