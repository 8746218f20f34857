"""LibreTranslate's API (``POST /translate``, ``GET /languages``), so that its clients
(Weblate, Mastodon, deep-translator, libretranslatepy...) work unchanged."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from service.dependencies import (
    RegistryDep,
    SettingsDep,
    checked_texts,
    choose_model,
    count_characters,
    encode_within_limits,
    search_options,
    translate_texts,
)
from service.errors import APIError, describe_validation_error
from service.guard import check_api_key, key_outside_body
from service.routes.translate import ERRORS
from service.schemas import Language, LibreTranslateRequest, LibreTranslateResponse

router = APIRouter(tags=["LibreTranslate-compatible"])

LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "fi": "Finnish", "fr": "French",
    "hi": "Hindi", "hu": "Hungarian", "it": "Italian", "ja": "Japanese", "ko": "Korean",
    "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sv": "Swedish", "tr": "Turkish",
    "uk": "Ukrainian", "zh": "Chinese",
}  # fmt: skip

_BODY_SCHEMA = LibreTranslateRequest.model_json_schema()
_OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _BODY_SCHEMA},
            "application/x-www-form-urlencoded": {"schema": _BODY_SCHEMA},
        },
    }
}


async def _read_body(request: Request) -> dict[str, Any]:
    """The request's fields from a JSON or a form body (a repeated form ``q`` is a list)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            raw = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise APIError(400, f"body is not valid JSON: {err}") from err
        if not isinstance(raw, dict):
            raise APIError(422, "body must be a JSON object")
        return raw
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        fields: dict[str, Any] = {}
        for key in form:
            values = [v for v in form.getlist(key) if isinstance(v, str)]
            fields[key] = values if key == "q" and len(values) > 1 else (values or [""])[0]
        return fields
    raise APIError(415, "send the body as JSON or as a form (application/x-www-form-urlencoded)")


@router.post(
    "/translate",
    response_model=LibreTranslateResponse,
    response_model_exclude_none=True,
    responses={**ERRORS, 415: ERRORS[400]},
    openapi_extra=_OPENAPI_BODY,
)
async def libre_translate(
    request: Request, settings: SettingsDep, registry: RegistryDep
) -> LibreTranslateResponse:
    """LibreTranslate's translate: ``translatedText`` has the shape of ``q``."""
    try:
        body = LibreTranslateRequest.model_validate(await _read_body(request))
    except ValidationError as err:
        message, field = describe_validation_error(err.errors())
        raise APIError(422, message, field) from err
    key = key_outside_body(request) or body.api_key
    check_api_key(settings, key)
    texts = checked_texts(body.q, settings, "q")
    source = body.source
    if source == "auto":  # no language detection: resolve only when the target allows one
        sources = registry.sources_for(body.target)
        if len(sources) != 1:
            raise APIError(400, "source 'auto' needs a target with exactly one source", "source")
        source = sources[0]
    served = choose_model(registry, None, source, body.target)
    n_best = body.alternatives + 1
    beam = max(settings.default_beam_size, n_best)
    options = search_options(settings, beam, None, n_best, attention=False)
    encoded = encode_within_limits(served, texts, settings, "q")
    count_characters(request, texts, key)
    done = await translate_texts(request, served, encoded, options)
    translated = [t.text for t, _ in done]
    alternatives = [[text for text, _ in t.n_best[1:]] for t, _ in done]
    if isinstance(body.q, str):
        return LibreTranslateResponse(
            translatedText=translated[0],
            alternatives=alternatives[0] if body.alternatives else None,
        )
    return LibreTranslateResponse(
        translatedText=translated, alternatives=alternatives if body.alternatives else None
    )


@router.get("/languages", response_model=list[Language])
async def languages(registry: RegistryDep) -> list[Language]:
    """Every source language with the targets it can be translated into."""
    targets: dict[str, set[str]] = {}
    for served in registry.models.values():
        targets.setdefault(served.source, set()).add(served.target)
    return [
        Language(code=code, name=LANGUAGE_NAMES.get(code, code), targets=sorted(targets[code]))
        for code in sorted(targets)
    ]
