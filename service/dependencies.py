"""What every translation route does before and around decoding: the API key, input
limits, choosing the model, search options, and queueing with overload answers."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Header, Request

from nmt.search import SearchConfig
from nmt.translator import Translation
from service.batcher import BatchInfo, DeadlineExceeded, QueueFull
from service.errors import APIError
from service.rate_limits import RateLimits
from service.registry import ModelRegistry, ServedModel, UnknownModel
from service.settings import Settings


# The dependencies are coroutines: FastAPI runs a plain function in a thread pool, a
# thread hop per request for what is an attribute lookup.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]


def count_characters(request: Request, texts: list[str], key: str | None) -> None:
    """Charge the texts to the client's character rate (429 past it)."""
    rate_limits: RateLimits = request.app.state.rate_limits
    rate_limits.count_characters(request, key, sum(len(t) for t in texts))


async def api_key_header(
    x_api_key: Annotated[str | None, Header(description="needed when the server has keys")] = None,
) -> None:
    """Declares the key header in the API schema; ``RequestGuard`` has already checked
    it, before the body was read."""


def checked_texts(text: str | list[str], settings: Settings, field: str) -> list[str]:
    """The request's texts as a list, after the emptiness, length and count limits."""
    texts = [text] if isinstance(text, str) else list(text)
    if not texts:
        raise APIError(422, f"{field}: give at least one text", field)
    if len(texts) > settings.max_texts:
        raise APIError(
            422, f"{field}: {len(texts)} texts, more than the limit of {settings.max_texts}", field
        )
    for i, t in enumerate(texts):
        where = field if isinstance(text, str) else f"{field}[{i}]"
        if not t.strip():
            raise APIError(422, f"{where}: text is empty", where)
        if len(t) > settings.max_chars:
            raise APIError(
                422,
                f"{where}: {len(t)} characters, more than the limit of {settings.max_chars}",
                where,
            )
    return texts


def choose_model(
    registry: ModelRegistry, model: str | None, source: str | None, target: str | None
) -> ServedModel:
    """The model asked for by name or by language pair; 503 while models load, 400 if none."""
    if model is None and (source is None or target is None):
        raise APIError(422, "give either model, or both source and target", "model")
    try:
        return registry.find(model, source, target)
    except UnknownModel as err:
        if registry.loading:
            raise APIError(503, "models are still loading", headers={"Retry-After": "5"}) from err
        field = "model" if model is not None else "target"
        raise APIError(400, f"{field}: {err}", field) from err


def encode_within_limits(
    served: ServedModel, texts: list[str], settings: Settings, field: str
) -> list[list[int]]:
    """The texts as source subwords, after the per-text and per-request subword limits
    (what bounds decoding work: normalization can make one character many subwords)."""
    sources = served.translator.src_tok.encode(texts)
    for i, ids in enumerate(sources):
        if len(ids) > settings.max_text_tokens:
            where = field if len(texts) == 1 else f"{field}[{i}]"
            raise APIError(
                422,
                f"{where}: {len(ids)} subwords, more than the limit of "
                f"{settings.max_text_tokens} (max_text_tokens); split the text",
                where,
            )
    total = sum(len(ids) for ids in sources)
    if total > settings.max_request_tokens:
        raise APIError(
            422,
            f"{field}: {total} subwords in all, more than the limit of "
            f"{settings.max_request_tokens} (max_request_tokens); send fewer texts at once",
            field,
        )
    return sources


def search_options(
    settings: Settings, beam_size: int | None, alpha: float | None, n_best: int, attention: bool
) -> SearchConfig:
    """Search options within the server's bounds (422 naming the field otherwise)."""
    beam = settings.default_beam_size if beam_size is None else beam_size
    if beam > settings.max_beam_size:
        raise APIError(
            422, f"beam_size: {beam} exceeds the limit of {settings.max_beam_size}", "beam_size"
        )
    if n_best > settings.max_n_best:
        raise APIError(
            422, f"n_best: {n_best} exceeds the limit of {settings.max_n_best}", "n_best"
        )
    if n_best > beam:
        raise APIError(422, f"n_best: {n_best} exceeds beam_size ({beam})", "n_best")
    return SearchConfig(
        beam_size=beam,
        alpha=settings.default_alpha if alpha is None else alpha,
        n_best=n_best,
        return_attention=attention,
        max_length=settings.max_output_tokens,
    )


def check_request_work(sources: list[list[int]], options: SearchConfig, settings: Settings) -> None:
    """422 when decoding ``sources`` could take more than ``max_request_work``: the
    subword limits alone let many short sentences at a large beam cost ten seconds."""
    steps = sum(len(ids) * options.max_len_a + options.max_len_b for ids in sources)
    work = int(steps * options.beam_size)
    if work > settings.max_request_work:
        raise APIError(
            422,
            f"{work} units of decoding work (steps x beam size), more than the limit of "
            f"{settings.max_request_work} (max_request_work); send fewer texts or use a "
            "smaller beam",
        )


async def _until_disconnected(request: Request) -> None:
    """Return when the client disconnects. The body has been read, so the next ASGI
    message can only be the disconnect: waiting for it costs nothing, unlike polling."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def translate_texts(
    request: Request, served: ServedModel, sources: list[list[int]], options: SearchConfig
) -> list[tuple[Translation, BatchInfo]]:
    """Queue the sources on the model's batcher and wait, within the request deadline,
    for as long as the client is there: a client that leaves takes its texts out of
    the queue. A full queue answers 429, a missed deadline 503, both with Retry-After."""
    settings: Settings = request.app.state.settings
    check_request_work(sources, options, settings)
    work = asyncio.ensure_future(
        served.batcher.submit(sources, options, settings.request_timeout_s)
    )
    watch = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    if work.cancelled():
        raise APIError(499, "client closed the request")
    try:
        return work.result()
    except QueueFull as err:
        raise APIError(
            429, f"server busy: {err}; retry shortly", headers={"Retry-After": "1"}
        ) from err
    except DeadlineExceeded as err:
        raise APIError(
            503,
            f"server busy: {err} (request_timeout_s); retry later",
            headers={"Retry-After": "5"},
        ) from err
