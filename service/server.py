"""``nmt serve``'s process: uvicorn with a shutdown that loses no request, and logs
that hold no API key. Process-wide settings (signals, log handlers) are made here, by
the entry point, never by building the app."""

from __future__ import annotations

import logging
import os
import sys
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from nmt.process import configure_threads
from service.redaction import redact_all_handlers
from service.settings import Settings

log = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL_S = 0.0005


class DrainingServer(uvicorn.Server):
    """On the first SIGTERM or SIGINT, /ready turns 503 at once and the listener stays
    open for ``delay`` seconds (load balancers see the 503 and stop sending); then
    uvicorn's own shutdown closes it and gives in-flight requests the graceful period.
    A second signal shuts down at once."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, delay: float) -> None:
        super().__init__(config)
        self.app = app
        self.delay = delay

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        already, self.app.state.draining = self.app.state.draining, True
        if already or self.delay <= 0:
            super().handle_exit(sig, frame)
            return
        log.warning("signal %d: draining; /ready is 503, closing in %.1f s", sig, self.delay)
        timer = threading.Timer(self.delay, super().handle_exit, (sig, None))
        timer.daemon = True
        timer.start()


def decode_threads(settings: Settings) -> int:
    """PyTorch's threads per decode: as set, or this process's cores shared among the
    CPU's decode workers (each worker's batch then runs on cores of its own)."""
    if settings.torch_threads is not None:
        return settings.torch_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // settings.batching("cpu").workers)


def serve(app: FastAPI, settings: Settings, log_level: str) -> None:
    """Run ``app`` until a signal, then drain (see ``DrainingServer``)."""
    configure_threads(decode_threads(settings))
    # The decode workers hold the GIL between their many small tensor operations; at
    # the default 5 ms the event loop waits that long for each turn, and replies go
    # out late (32 clients, fp32: 45-55 -> 59-65 sentences/s with batches of 16).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=max(1, round(settings.graceful_shutdown_s)),
    )
    # uvicorn.Config has set up its log handlers by now: filter them all
    redact_all_handlers(
        (key.get_secret_value() for key in settings.api_keys),
        ("uvicorn", "uvicorn.error", "uvicorn.access"),
    )
    DrainingServer(config, app, settings.shutdown_delay_s).run()
