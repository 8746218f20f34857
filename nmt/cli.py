"""The ``nmt`` command: dispatches ``train`` to ``training``, ``serve`` and
``quickstart`` to ``service``, and ``translate`` / ``evaluate`` to ``nmt.commands``;
sets up logging."""

from __future__ import annotations

import argparse
import sys

from nmt import commands
from nmt.process import configure_logging, preload_allocator
from service import command as serve_command
from service import quickstart
from training import command as train_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmt", description="Attention RNN neural machine translation toolkit."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    train_command.add_parser(sub)
    commands.add_translate_parser(sub)
    commands.add_evaluate_parser(sub)
    serve_command.add_parser(sub)
    quickstart.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    if argv is None:  # a program of its own (not called from Python): it owns the process
        try:
            preload_allocator([sys.executable, *sys.orig_argv[1:]])
        except ValueError as error:
            print(f"nmt: {error}", file=sys.stderr)
            return 2
    from nmt.checkpoint import CheckpointError
    from training.config import ConfigError
    from training.data import DataError

    run = {
        "train": train_command.run,
        "translate": commands.run_translate,
        "evaluate": commands.run_evaluate,
        "serve": serve_command.run,
        "quickstart": quickstart.run,
    }
    try:
        return run[args.command](args)
    except (ConfigError, DataError, CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"nmt {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nmt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
