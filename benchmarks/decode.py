"""Decoding benchmark: BLEU by beam size and alpha, speed, latency, int8 quantization.

    python benchmarks/decode.py --checkpoint runs/bench_quality/best.pt --out runs/bench_decode

On test_2016_flickr (1,000 sentences):
- BLEU (sacreBLEU, cased and -lc) for beam 1, 5, 10 x alpha 0, 0.6, 1.0;
- speed at beam 5 and greedy, batch 64: sentences/s and target tokens/s (median of
  ``--repeats`` runs, model already loaded), and the fraction of this machine's fp32
  matmul peak reached, from the decoder's floating-point operations counted by
  torch's profiler and the peak measured here with large fp32 matmuls;
- single-sentence greedy latency (p50, p90) for a 15-word sentence;
- the same speed and BLEU with ``--precision bf16`` and with ``--quantize int8``.

Writes OUT/decode.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import sacrebleu
import torch
from torch.profiler import ProfilerActivity

from nmt.search import SearchConfig
from nmt.text_files import read_lines
from nmt.translator import Translator

ROOT = Path(__file__).resolve().parent.parent


def matmul_peak_gflops(size: int = 2048, seconds: float = 3.0) -> float:
    """Best fp32 GFLOP/s of square matmuls over all intra-op threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def bleu(hyps: list[str], refs: list[str]) -> tuple[float, float]:
    cased = sacrebleu.corpus_bleu(hyps, [refs]).score
    lower = sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score
    return round(cased, 2), round(lower, 2)


def decode_speed(
    translator: Translator, sources: list[str], cfg: SearchConfig, repeats: int
) -> dict:
    """Median wall time of translating ``sources``; sentences/s and target tokens/s."""
    times, results = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        results = translator.translate(sources, cfg, batch_size=64)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    tokens = sum(len(r.target_tokens) + 1 for r in results)  # + EOS
    return {
        "seconds_median": round(seconds, 2),
        "seconds_all": [round(t, 2) for t in times],
        "sentences_per_s": round(len(sources) / seconds, 1),
        "target_tokens_per_s": round(tokens / seconds, 1),
        "hypotheses": [r.text for r in results],
    }


def decoder_gflop(translator: Translator, sources: list[str], cfg: SearchConfig) -> float:
    """Floating-point operations of one decode of ``sources``: the matrix products
    (linear layers, attention, output layer) as counted by torch's profiler. The
    encoder's fused LSTM kernel is not counted, so this is a lower bound."""
    with torch.profiler.profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        translator.translate(sources, cfg, batch_size=64)
    return sum(event.flops for event in prof.key_averages()) / 1e9


def latency_ms(translator: Translator, sentence: str, runs: int = 30) -> dict:
    cfg = SearchConfig(beam_size=1, return_attention=False)
    for _ in range(3):
        translator.translate([sentence], cfg)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        translator.translate([sentence], cfg)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50": round(times[len(times) // 2], 1), "p90": round(times[int(len(times) * 0.9)], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench_decode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip-table", action="store_true", help="speed and latency only (no beam x alpha table)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    translator = Translator.from_checkpoint(args.checkpoint, "cpu")
    src, tgt = translator.loaded.src_lang, translator.loaded.tgt_lang
    sources = read_lines(args.data / f"test_2016_flickr.{src}.gz")
    refs = read_lines(args.data / f"test_2016_flickr.{tgt}.gz")
    result: dict = {"checkpoint": str(args.checkpoint), "threads": torch.get_num_threads()}

    peak = matmul_peak_gflops()
    result["fp32_matmul_peak_gflops"] = round(peak, 1)
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s ({torch.get_num_threads()} threads)", flush=True)

    table: dict[str, tuple[float, float]] = {}
    for beam in () if args.skip_table else (1, 5, 10):
        for alpha in (0.0, 0.6, 1.0):
            cfg = SearchConfig(beam_size=beam, alpha=alpha, return_attention=False)
            hyps = [t.text for t in translator.translate(sources, cfg, batch_size=64)]
            table[f"beam{beam}_alpha{alpha}"] = bleu(hyps, refs)
            print(
                f"beam {beam:2d} alpha {alpha}: BLEU {table[f'beam{beam}_alpha{alpha}']}",
                flush=True,
            )
    result["bleu_table"] = table

    speeds = {}
    variants = (("fp32", None, "fp32"), ("bf16", None, "bf16"), ("int8", "int8", "fp32"))
    for name, quantize, precision in variants:
        model = Translator.from_checkpoint(args.checkpoint, "cpu", quantize, precision)
        for beam in (5, 1):
            cfg = SearchConfig(beam_size=beam, alpha=1.0, return_attention=False)
            run = decode_speed(model, sources, cfg, args.repeats)
            run["bleu"] = bleu(run.pop("hypotheses"), refs)
            gflop = decoder_gflop(model, sources, cfg)
            run["decoder_gflop"] = round(gflop, 1)
            run["gflops_achieved"] = round(gflop / run["seconds_median"], 1)
            run["fraction_of_peak"] = round(gflop / run["seconds_median"] / peak, 3)
            speeds[f"{name}_beam{beam}"] = run
            print(f"{name} beam {beam}: {run}", flush=True)
    result["speed"] = speeds

    fifteen = next(s for s in sources if len(s.split()) == 15)
    result["latency_sentence"] = fifteen
    for name, quantize, precision in variants:
        model = Translator.from_checkpoint(args.checkpoint, "cpu", quantize, precision)
        result[f"latency_greedy_ms_{name}"] = latency_ms(model, fifteen)
        print(f"greedy latency {name}: {result[f'latency_greedy_ms_{name}']}", flush=True)

    (args.out / "decode.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print("\n| beam | alpha 0 | alpha 0.6 | alpha 1.0 |\n|---|---|---|---|")
    for beam in (1, 5, 10) if table else ():
        cells = [
            f"{table[f'beam{beam}_alpha{a}'][0]:.2f} / {table[f'beam{beam}_alpha{a}'][1]:.2f}"
            for a in (0.0, 0.6, 1.0)
        ]
        print(f"| {beam} | " + " | ".join(cells) + " |")
    print(f"\nwrote {args.out / 'decode.json'}")


if __name__ == "__main__":
    main()
