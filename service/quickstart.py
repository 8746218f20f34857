"""``nmt quickstart``: from a fresh clone to a running translator in one command.

With no quick model in its run directory, it trains ``configs/quick_en_de.yaml`` (a
usable en->de model in 8 minutes on 2 CPU cores); a run that was stopped
(Ctrl-C) continues where it stopped. Then it serves the model and prints where to point
a browser and how to call the API. With the model there, it starts in seconds.

In a container, ``--no-serve --model-out /models/NAME.pt`` makes it a one-shot training
job that leaves the model where ``nmt serve`` finds it (docker/compose.yaml).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from nmt.checkpoint import read_checkpoint
from training.command import add_config_arguments, config_from_args, train

if TYPE_CHECKING:
    from training.config import Config

log = logging.getLogger("nmt")

QUICK_CONFIG = Path("configs/quick_en_de.yaml")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart",
        help="train the quick en->de model if there is none, then serve it",
        description=__doc__.split("\n\n")[1],
    )
    add_config_arguments(p, QUICK_CONFIG)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--no-serve",
        dest="serve",
        action="store_false",
        help="train (or continue) if needed, then exit instead of serving",
    )
    p.add_argument(
        "--model-out",
        type=Path,
        metavar="PATH",
        help="also copy the trained model here; when PATH exists, nothing is trained",
    )


def training_state(out: Path) -> Literal["none", "unfinished", "done"]:
    """Whether the run in ``out`` has not started, was stopped early, or ended."""
    last = out / "last.pt"
    if not last.is_file():
        return "none"
    stopped = str(read_checkpoint(last).get("scores", {}).get("stopped", ""))
    finished = stopped and not stopped.startswith("stopped by")
    return "done" if finished and (out / "best.pt").is_file() else "unfinished"


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    out = Path(config.output_dir)
    if args.model_out is not None and args.model_out.is_file():
        log.info("%s is there: nothing to train", args.model_out)
        checkpoint = args.model_out
    else:
        paused = ensure_trained(config, out)
        if paused is not None:
            print(f"paused ({paused}); run `nmt quickstart` again to continue")
            return 130
        checkpoint = out / "best.pt"
        if args.model_out is not None:
            publish(checkpoint, args.model_out)
            checkpoint = args.model_out
    if args.serve:
        serve_quick_model(checkpoint, config.data.src_lang, config.data.tgt_lang, args)
    return 0


def ensure_trained(config: Config, out: Path) -> str | None:
    """Train the quick model into ``out`` or continue its run; why it paused, if it did."""
    state = training_state(out)
    if state == "done":
        return None
    budget = config.train.max_minutes or 10.0
    log.info(
        "%s the quick model in %s (%.0f minutes of training in all; the log says how "
        "many are left); Ctrl-C pauses, and `nmt quickstart` again continues",
        "continuing" if state == "unfinished" else "training",
        out,
        budget,
    )
    # the budget is the whole run's: a continued run trains what is left of it
    stop = train(config, resume=state == "unfinished", max_minutes=budget)
    return stop.reason


def publish(checkpoint: Path, target: Path) -> None:
    """Copy ``checkpoint`` to ``target`` whole or not at all (a server may be watching)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(checkpoint, partial)
    partial.replace(target)
    log.info("model published to %s", target)


def serve_quick_model(checkpoint: Path, src: str, tgt: str, args: argparse.Namespace) -> None:
    from service.app import create_app
    from service.server import serve
    from service.settings import load_settings

    settings = load_settings(None, models={"quick": checkpoint}, host=args.host,
                             port=args.port, device=args.device)  # fmt: skip
    base = f"http://{args.host}:{args.port}"
    print(
        f"\nServing {checkpoint} ({src} -> {tgt}).\n"
        f"  Open {base}/ in a browser, or call the API:\n"
        f"  curl -s {base}/translate -d q='A man is riding a bike.' -d source={src} "
        f"-d target={tgt}\n",
        flush=True,
    )
    serve(create_app(settings), settings, "info")
