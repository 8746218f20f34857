"""What every translation route does before and around decoding: the API key, input
limits, choosing the model, search options, and queueing with overload answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from nmt.search import SearchConfig
from nmt.translator import Translation
from service.batcher import BatchInfo, QueueFull
from service.errors import APIError
from service.registry import ModelRegistry, ServedModel, UnknownModel
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]


def check_api_key(settings: Settings, key: str | None) -> None:
    """Raise 401/403 unless keys are off or ``key`` is one of them."""
    if not settings.api_keys:
        return
    if not key:
        raise APIError(401, "an API key is required (X-API-Key header or api_key)", "api_key")
    if key not in settings.api_keys:
        raise APIError(403, "invalid API key", "api_key")


def api_key_header(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="needed when the server has keys")] = None,
) -> None:
    check_api_key(settings, x_api_key)


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
    )


async def translate_texts(
    served: ServedModel, texts: list[str], options: SearchConfig
) -> list[tuple[Translation, BatchInfo]]:
    """Queue the texts on the model's batcher; a full queue answers 429 with Retry-After."""
    try:
        return await served.batcher.submit(texts, options)
    except QueueFull as err:
        raise APIError(
            429, f"server busy: {err}; retry shortly", headers={"Retry-After": "1"}
        ) from err
