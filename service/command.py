"""``nmt serve``: the entry point of the service."""

from __future__ import annotations

import argparse
from pathlib import Path

from nmt.device import PRECISIONS


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--precision", choices=PRECISIONS, help="decode under autocast")
    p.add_argument("--log-level", default="info", help="uvicorn log level (default info)")


def run(args: argparse.Namespace) -> int:
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
