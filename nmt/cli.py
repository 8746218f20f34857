"""The ``nmt`` command: ``train``, ``translate``, ``evaluate``, ``serve``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nmt.search import SearchConfig
    from nmt.translator import Translation

log = logging.getLogger("nmt")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train an attention RNN translation model. The run directory receives "
        "best.pt (best validation BLEU), last.pt (full training state, for --resume), "
        "step_N.pt, curve.jsonl and the resolved config.yaml.",
    )
    p.add_argument("--config", type=Path, help="YAML config (default: built-in defaults)")
    p.add_argument("--output-dir", type=Path, help="run directory (overrides output_dir)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUTPUT_DIR/last.pt exactly where it stopped",
    )
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps in all")
    p.add_argument(
        "--max-minutes",
        type=float,
        help="stop after this many minutes of this invocation (checkpoint written)",
    )
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (overrides device)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.batch_tokens=2000 (repeatable)",
    )


def _add_search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="a .pt file written by nmt train")
    p.add_argument("--beam-size", type=int, default=5, help="1 = greedy (default 5)")
    p.add_argument(
        "--alpha",
        type=float,
        default=1.0,
        help="length normalization exponent: score = log P / len^alpha (default 1)",
    )
    p.add_argument(
        "--penalty",
        choices=["average", "gnmt"],
        default="average",
        help="length penalty form (default: average)",
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
        choices=["fp32", "bf16", "fp16", "auto"],
        default="fp32",
        help="decode under autocast (bf16: faster where the hardware has it; default fp32)",
    )


def _add_translate(sub: argparse._SubParsersAction) -> None:
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


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
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


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve models over HTTP",
        description="Serve checkpoints over HTTP (uvicorn). Every option is also an NMT_* "
        "environment variable (NMT_MODELS as JSON, NMT_MODEL_DIR, NMT_DEVICE, NMT_PORT, "
        "NMT_API_KEYS, NMT_MAX_WAIT_MS...) or a key of the --config YAML file; flags win "
        "over the environment, which wins over the file. See README, 'Service'.",
    )
    p.add_argument(
        "--model",
        dest="models",
        action="append",
        metavar="NAME=CHECKPOINT",
        help="a model to serve (repeatable); the language pair is read from the checkpoint",
    )
    p.add_argument("--config", type=Path, help="YAML file with service settings")
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization (CPU)")
    p.add_argument(
        "--precision", choices=["fp32", "bf16", "fp16", "auto"], help="decode under autocast"
    )
    p.add_argument("--log-level", default="info", help="uvicorn log level (default info)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmt", description="Attention RNN neural machine translation toolkit."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_translate(sub)
    _add_evaluate(sub)
    _add_serve(sub)
    return parser


def _run_train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.trainer import Trainer

    overrides = list(args.overrides)
    if args.output_dir is not None:
        overrides.append(f"output_dir={args.output_dir}")
    if args.device is not None:
        overrides.append(f"device={args.device}")
    config = load_config(args.config, overrides)
    trainer = Trainer(config, resume=args.resume)
    try:
        trainer.run(max_steps=args.max_steps, max_minutes=args.max_minutes)
    finally:
        trainer.close()
    return 0


def _search_config(
    args: argparse.Namespace, n_best: int = 1, attention: bool = False
) -> SearchConfig:
    from nmt.search import SearchConfig

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
    translator = Translator.from_checkpoint(
        args.checkpoint, args.device, args.quantize, args.precision
    )
    loaded = time.perf_counter()
    results = translator.translate(lines, cfg, args.batch_size)
    seconds = time.perf_counter() - loaded
    tokens = sum(len(r.target_tokens) + 1 for r in results)  # + EOS
    log.info(
        "loaded %s in %.2f s; translated %d sentences in %.2f s "
        "(%.1f sentences/s, %.0f target tokens/s)",
        args.checkpoint,
        loaded - started,
        len(lines),
        seconds,
        len(lines) / seconds if seconds > 0 else 0.0,
        tokens / seconds if seconds > 0 else 0.0,
    )
    return results


def _run_translate(args: argparse.Namespace) -> int:
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


def _run_evaluate(args: argparse.Namespace) -> int:
    import sacrebleu

    from training.data import read_lines

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


def _run_serve(args: argparse.Namespace) -> int:
    from service.app import create_app
    from service.server import serve
    from service.settings import load_settings

    models = None
    if args.models:
        models = {}
        for spec in args.models:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--model wants NAME=CHECKPOINT, got {spec!r}")
            models[name] = Path(path)
    settings = load_settings(
        args.config,
        models=models,
        host=args.host,
        port=args.port,
        device=args.device,
        quantize=args.quantize,
        precision=args.precision,
    )
    for name, path in settings.model_paths().items():
        if not path.is_file():
            raise FileNotFoundError(f"model {name}: checkpoint {path} does not exist")
    serve(create_app(settings), settings, args.log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # under torchrun, the other ranks only report problems: rank 0 tells the story
    quiet = int(os.environ.get("RANK", "0")) > 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    from nmt.checkpoint import CheckpointError
    from training.config import ConfigError
    from training.data import DataError

    commands = {
        "train": _run_train,
        "translate": _run_translate,
        "evaluate": _run_evaluate,
        "serve": _run_serve,
    }
    try:
        return commands[args.command](args)
    except (ConfigError, DataError, CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"nmt {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nmt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
