"""``nmt translate`` and ``nmt evaluate``: decoding from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from nmt.device import DECODING_PRECISION, PRECISIONS
from nmt.search import DEFAULT_SEARCH, Penalty, SearchConfig

if TYPE_CHECKING:
    from nmt.translator import Translation

log = logging.getLogger("nmt")


def _add_search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        required=True,
        help="a .pt file written by nmt train; give it several times to decode with an "
        "ensemble of those checkpoints (same tokenizers; about N times slower)",
    )
    p.add_argument(
        "--beam-size",
        type=int,
        default=DEFAULT_SEARCH.beam_size,
        help=f"1 = greedy (default {DEFAULT_SEARCH.beam_size})",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_SEARCH.alpha,
        help="length normalization exponent: score = log P / len^alpha "
        f"(default {DEFAULT_SEARCH.alpha:g})",
    )
    p.add_argument(
        "--penalty",
        choices=list(get_args(Penalty)),
        default=DEFAULT_SEARCH.penalty,
        help=f"length penalty form (default: {DEFAULT_SEARCH.penalty})",
    )
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default 64)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--quantize",
        choices=["int8"],
        help="dynamic int8 quantization of every weight matrix (CPU only)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=DECODING_PRECISION,
        help="decode under autocast (bf16: faster where the hardware has it; "
        f"default {DECODING_PRECISION})",
    )


def add_translate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translate",
        help="translate text with a checkpoint",
        description="Translate lines from --input (default stdin).",
    )
    _add_search_options(p)
    p.add_argument("--n-best", type=int, default=1, help="hypotheses per sentence (jsonl)")
    p.add_argument("--input", type=Path, help="input file, one sentence per line (default stdin)")
    p.add_argument("--output", type=Path, help="output file (default stdout)")
    p.add_argument("--format", choices=["text", "jsonl"], default="text")
    p.add_argument(
        "--plot-attention",
        type=Path,
        metavar="DIR",
        help="write one attention heatmap PNG per sentence into DIR (needs matplotlib)",
    )


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="translate a test set and score it with sacreBLEU")
    _add_search_options(p)
    p.add_argument("--src", type=Path, required=True, help="source file (plain or .gz)")
    p.add_argument(
        "--ref",
        type=Path,
        action="append",
        required=True,
        help="reference file (repeat for several references)",
    )
    p.add_argument("--output", type=Path, help="also write the translations here")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")


def _search_config(
    args: argparse.Namespace, n_best: int = 1, attention: bool = False
) -> SearchConfig:
    if args.beam_size < 1:
        raise ValueError("--beam-size must be >= 1")
    if n_best > args.beam_size:
        raise ValueError("--n-best cannot exceed --beam-size")
    return SearchConfig(
        beam_size=args.beam_size,
        alpha=args.alpha,
        penalty=args.penalty,
        n_best=n_best,
        return_attention=attention,
    )


def _translation_record(r: Translation) -> dict[str, Any]:
    """One JSON line of ``nmt translate --format jsonl``."""
    return {
        "translation": r.text,
        "score": r.score,
        "confidence": r.confidence,
        "n_best": [{"translation": t, "score": s} for t, s in r.n_best],
        "source_tokens": r.source_tokens,
        "target_tokens": r.target_tokens,
        "attention": r.attention,
        "source_words": r.source_words,
        "target_words": r.target_words,
        "alignment": r.alignment,
    }


def _translate_timed(
    args: argparse.Namespace, lines: list[str], cfg: SearchConfig
) -> list[Translation]:
    """Load the checkpoint and translate ``lines``, logging load time and throughput."""
    from nmt.translator import Translator

    started = time.perf_counter()
    translator = Translator.from_checkpoints(
        args.checkpoint, args.device, args.quantize, args.precision
    )
    loaded = time.perf_counter()
    results = translator.translate(lines, cfg, args.batch_size)
    seconds = time.perf_counter() - loaded
    tokens = sum(len(r.target_tokens) + 1 for r in results)  # + EOS
    log.info(
        "loaded %s in %.2f s; translated %d sentences in %.2f s "
        "(%.1f sentences/s, %.0f target tokens/s)",
        " + ".join(str(c) for c in args.checkpoint),
        loaded - started,
        len(lines),
        seconds,
        len(lines) / seconds if seconds > 0 else 0.0,
        tokens / seconds if seconds > 0 else 0.0,
    )
    return results


def run_translate(args: argparse.Namespace) -> int:
    wants_attention = args.format == "jsonl" or args.plot_attention is not None
    cfg = _search_config(args, args.n_best, attention=wants_attention)
    source = args.input.read_text(encoding="utf-8") if args.input else sys.stdin.read()
    lines = source.splitlines()
    results = _translate_timed(args, lines, cfg)
    out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    try:
        for r in results:
            if args.format == "jsonl":
                out.write(json.dumps(_translation_record(r), ensure_ascii=False) + "\n")
            else:
                out.write(r.text + "\n")
    finally:
        if args.output:
            out.close()
    if args.plot_attention is not None:
        from nmt.plot import plot_attention

        for i, r in enumerate(results, start=1):
            if r.attention is not None:
                plot_attention(
                    r.attention,
                    r.source_tokens,
                    r.target_tokens,
                    args.plot_attention / f"{i:05d}.png",
                    title=r.text,
                )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import sacrebleu

    from nmt.text_files import read_lines

    cfg = _search_config(args)
    sources = read_lines(args.src)
    refs = [read_lines(r) for r in args.ref]
    for path, r in zip(args.ref, refs, strict=True):
        if len(r) != len(sources):
            raise ValueError(f"{path} has {len(r)} lines but {args.src} has {len(sources)}")
    hyps = [t.text for t in _translate_timed(args, sources, cfg)]
    if args.output:
        args.output.write_text("\n".join(hyps) + "\n", encoding="utf-8")
    bleu, bleu_lc, chrf = (
        sacrebleu.metrics.BLEU(),
        sacrebleu.metrics.BLEU(lowercase=True),
        sacrebleu.metrics.CHRF(),
    )
    scores = {
        name: {
            "score": round(m.corpus_score(hyps, refs).score, 2),
            "signature": str(m.get_signature()),
        }
        for name, m in (("bleu", bleu), ("bleu_lc", bleu_lc), ("chrf", chrf))
    }
    if args.json:
        print(json.dumps(scores, indent=1))
    else:
        for name, s in scores.items():
            print(f"{name:8s} {s['score']:6.2f}  {s['signature']}")
    return 0
