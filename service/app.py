"""The FastAPI application: its lifespan loads the models; nothing else is global."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.detection import LanguageDetection
from service.errors import install_error_handlers
from service.guard import RequestGuard
from service.metrics import Metrics, RequestMetrics
from service.rate_limits import RateLimits
from service.registry import ModelRegistry
from service.routes import files, libretranslate, operations, page, translate
from service.settings import Settings, load_settings
from service.translated_files import TranslatedFiles


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start loading the models and answer at once: /ready says 503 until they are in."""
    registry = ModelRegistry(app.state.settings, app.state.metrics)
    app.state.registry = registry
    app.state.files = TranslatedFiles()
    app.state.detection = LanguageDetection([])
    loading = asyncio.create_task(_load(app, registry))
    try:
        yield
    finally:
        loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)
        await registry.close()


async def _load(app: FastAPI, registry: ModelRegistry) -> None:
    """Load the models, then the language detector for their languages."""
    await registry.load_all()
    languages = sorted({*registry.sources(), *registry.targets()})
    enabled = app.state.settings.detect_languages
    app.state.detection = await asyncio.to_thread(LanguageDetection, languages, enabled)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; ``settings`` default to the environment and ``NMT_CONFIG``."""
    app = FastAPI(
        title="nmt translation service",
        description="Attention LSTM translation with word alignments, dynamic batching "
        "and a LibreTranslate-compatible API.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings or load_settings()
    app.state.metrics = Metrics()
    app.state.rate_limits = RateLimits(app.state.settings)
    app.state.draining = False  # set by the server on SIGTERM: /ready answers 503
    # added first, so it sits inside CORS (its refusals carry CORS headers) and the counter
    app.add_middleware(RequestGuard, settings=app.state.settings, rate_limits=app.state.rate_limits)
    if app.state.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=app.state.settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    install_error_handlers(app)

    app.add_middleware(RequestMetrics, metrics=app.state.metrics)  # outermost: counts all
    for module in (translate, libretranslate, files, operations, page):
        app.include_router(module.router)
    return app
