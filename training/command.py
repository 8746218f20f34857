"""``nmt train``: the entry point of training. It alone makes the process-wide
settings a run needs (threads, the allocator, stop signals); the Trainer changes none."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nmt.process import StopRequest
    from training.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train an attention RNN translation model. The run directory receives "
        "best.pt (best validation BLEU), last.pt (full training state, for --resume), "
        "step_N.pt, curve.jsonl and the resolved config.yaml.",
    )
    add_config_arguments(p, None)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUTPUT_DIR/last.pt exactly where it stopped",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        help="the run's budget in optimizer steps, over all its invocations "
        "(overrides train.max_steps)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        help="the run's budget in minutes of training, over all its invocations: a "
        "resumed run trains what is left, and the learning-rate cooldown follows it "
        "(overrides train.max_minutes)",
    )
    p.add_argument(
        "--stop-after-minutes",
        type=float,
        help="end this invocation after this many minutes (last.pt written), leaving the "
        "run's budget and schedule as they are; --resume goes on (e.g. in time-limited "
        "job slots)",
    )


def add_config_arguments(p: argparse.ArgumentParser, default: Path | None) -> None:
    """The arguments ``config_from_args`` reads: --config (``default`` when not given;
    None: the built-in defaults), --output-dir, --device and --set."""
    where = "built-in defaults" if default is None else default
    p.add_argument("--config", type=Path, default=default, help=f"YAML config (default: {where})")
    p.add_argument("--output-dir", type=Path, help="run directory (overrides output_dir)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (overrides device)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.batch_tokens=2000 (repeatable)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """The training config named by ``--config``, with ``--set``, ``--output-dir`` and
    ``--device`` applied."""
    from training.config import load_config

    overrides = list(args.overrides)
    if args.output_dir is not None:
        overrides.append(f"output_dir={args.output_dir}")
    if args.device is not None:
        overrides.append(f"device={args.device}")
    return load_config(args.config, overrides)


def run(args: argparse.Namespace) -> int:
    train(
        config_from_args(args),
        args.resume,
        args.max_steps,
        args.max_minutes,
        args.stop_after_minutes,
    )
    return 0


def train(
    config: Config,
    resume: bool,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    stop_after_minutes: float | None = None,
) -> StopRequest:
    """Train ``config`` with the process set up for it (oneDNN's kernel cache, threads,
    allocator, signals); the returned request says whether a signal stopped the run
    (``reason``)."""
    from nmt.device import resolve_device
    from nmt.process import (
        FragmentReleaser,
        StopRequest,
        bound_kernel_cache,
        configure_threads,
        keep_freed_memory,
    )
    from training.trainer import Trainer

    bound_kernel_cache()
    configure_threads(config.train.num_threads)
    on_cpu = resolve_device(config.device).type == "cpu"
    release = FragmentReleaser() if on_cpu and keep_freed_memory() else None
    trainer = Trainer(config, resume=resume, release_fragments=release)
    stop = StopRequest()
    try:
        with stop.installed():
            trainer.run(max_steps, max_minutes, stop, stop_after_minutes)
    finally:
        trainer.close()
    return stop
