"""LibreTranslate's API, as its clients (Mastodon, Weblate, wagtail-localize,
libretranslatepy, argos-translate...) call it: parameters from the query string, a
form or JSON; ``{"error": ...}`` with LibreTranslate's status codes (400 for bad
input, 403 for keys, 429 for limits); ``source=auto`` with per-text detection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from nmt.documents import TextJob
from service.dependencies import (
    RegistryDep,
    SettingsDep,
    choose_model,
    count_characters,
    search_options,
)
from service.detection import LanguageDetection
from service.documents import FORMATS, Format, plan, translate_jobs
from service.errors import APIError
from service.guard import check_api_key, key_outside_body
from service.languages import canonical, name, resolve
from service.registry import ModelRegistry
from service.request_fields import int_field, request_fields, text_field
from service.routes.translate import ERRORS
from service.schemas import DetectedLanguage, FrontendSettings, Language
from service.settings import Settings

router = APIRouter(tags=["LibreTranslate-compatible"])

_FIELDS = {"q", "source", "target", "format", "alternatives", "api_key"}
_OPENAPI_FIELDS = {
    "parameters": [
        {"name": field, "in": "query", "required": False, "schema": {"type": "string"}}
        for field in sorted(_FIELDS)
    ]
}


@contextlib.contextmanager
def libretranslate_errors() -> Iterator[None]:
    """LibreTranslate's status codes: 400 for any bad input, 403 for any key problem."""
    try:
        yield
    except APIError as err:
        if err.status == 422:
            err.status = 400
        elif err.status == 401:
            err.status = 403
        raise


def _texts(fields: dict[str, Any], settings: Settings) -> list[str] | str:
    q = fields.get("q")
    if q is None or q in ("", []):
        raise APIError(400, "Invalid request: missing q parameter", "q")
    texts = q if isinstance(q, list) else [q]
    if not all(isinstance(t, str) for t in texts):
        raise APIError(400, "Invalid request: q must be a text or a list of texts", "q")
    if len(texts) > settings.max_texts:
        raise APIError(
            400,
            f"Invalid request: request ({len(texts)}) exceeds text limit ({settings.max_texts})",
            "q",
        )
    for text in texts:
        if len(text) > settings.max_chars:
            raise APIError(
                400,
                f"Invalid request: request ({len(text)}) exceeds character limit "
                f"({settings.max_chars})",
                "q",
            )
    return q


def language_field(fields: dict[str, Any], field: str) -> str:
    value = text_field(fields, field)
    if not value:
        raise APIError(400, f"Invalid request: missing {field} parameter", field)
    return canonical(value)


def _format(fields: dict[str, Any]) -> Format:
    fmt = (text_field(fields, "format") or "text").lower()
    if fmt not in ("text", "html"):
        raise APIError(400, f"{fmt} format is not supported", "format")
    return "html" if fmt == "html" else "text"


def _sources(
    texts: list[str], source: str, target: str, registry: ModelRegistry, request: Request
) -> list[tuple[str, float]]:
    """Each text's source language and the confidence in it (100 unless detected)."""
    sources = registry.sources_for(target)
    if source != "auto":
        held = resolve(source, set(sources))
        if held is None:
            raise APIError(400, f"{source} is not supported as a source for {target}", "source")
        return [(held, 100.0)] * len(texts)
    detection: LanguageDetection = request.app.state.detection
    out = []
    for text in texts:
        found = detection.detect(text, among=sources)
        out.append((found.language, found.confidence) if found else (sources[0], 0.0))
    return out


@router.post("/translate", responses=ERRORS, openapi_extra=_OPENAPI_FIELDS)
async def libre_translate(
    request: Request, settings: SettingsDep, registry: RegistryDep
) -> JSONResponse:
    """LibreTranslate's translate: ``translatedText`` (and ``detectedLanguage``,
    ``alternatives``) has the shape of ``q``; blank texts come back as ``""``."""
    with libretranslate_errors():
        fields = await request_fields(request)
        key = key_outside_body(request) or text_field(fields, "api_key")
        check_api_key(settings, key)
        q = _texts(fields, settings)
        texts = q if isinstance(q, list) else [q]
        source, target_code, fmt = (
            language_field(fields, "source"),
            language_field(fields, "target"),
            _format(fields),
        )
        alternatives = max(0, int_field(fields, "alternatives", 0))
        if alternatives >= settings.max_n_best:
            raise APIError(
                400,
                f"Invalid request: alternatives parameter must be <= {settings.max_n_best - 1}",
                "alternatives",
            )
        target = resolve(target_code, set(registry.targets()))
        if target is None:
            raise APIError(400, f"{target_code} is not supported", "target")
        detected = _sources(texts, source, target, registry, request)
        count_characters(request, texts, key)
        translated, others = await _translate(
            request, settings, registry, texts, detected, target, fmt, alternatives
        )
    result: dict[str, Any] = {
        "translatedText": translated if isinstance(q, list) else translated[0]
    }
    if source == "auto":
        found = [{"confidence": c, "language": code} for code, c in detected]
        result["detectedLanguage"] = found if isinstance(q, list) else found[0]
    if alternatives:
        result["alternatives"] = others if isinstance(q, list) else others[0]
    return JSONResponse(result)


async def _translate(
    request: Request,
    settings: Settings,
    registry: ModelRegistry,
    texts: list[str],
    detected: list[tuple[str, float]],
    target: str,
    fmt: Format,
    alternatives: int,
) -> tuple[list[str], list[list[str]]]:
    """The translations (and alternatives) of ``texts``, each from its source language;
    the texts of one source language go to their model together."""
    translated = [""] * len(texts)
    others: list[list[str]] = [[] for _ in texts]
    n_best = alternatives + 1
    options = search_options(
        settings, max(settings.default_beam_size, n_best), None, n_best, attention=True
    )
    for source in sorted({code for code, _ in detected}):
        served = choose_model(registry, None, source, target)
        mine = [i for i, (code, _) in enumerate(detected) if code == source and texts[i].strip()]
        jobs = plan([texts[i] for i in mine], fmt, served, settings)
        done = await translate_jobs(request, served, jobs, options, "q")
        for i, job, translations in zip(mine, jobs, done, strict=True):
            translated[i] = job.finish(translations)
            if alternatives and isinstance(job, TextJob):
                others[i] = job.alternatives(translations, alternatives)
    return translated, others


@router.post("/detect", responses=ERRORS, openapi_extra=_OPENAPI_FIELDS)
async def detect(request: Request, settings: SettingsDep, registry: RegistryDep) -> JSONResponse:
    """The languages ``q`` may be in, among those the server translates from, most
    likely first: ``[{"confidence": 0-100, "language": code}]``."""
    with libretranslate_errors():
        fields = await request_fields(request)
        check_api_key(settings, key_outside_body(request) or text_field(fields, "api_key"))
        q = _texts(fields, settings)
        text = "\n".join(q) if isinstance(q, list) else q
        detection: LanguageDetection = request.app.state.detection
        found = detection.candidates(text, among=sorted(set(registry.sources())))
    body = [DetectedLanguage(language=d.language, confidence=d.confidence) for d in found]
    return JSONResponse([d.model_dump() for d in body] or [{"confidence": 0.0, "language": "en"}])


@router.get("/languages", response_model=list[Language])
async def languages(registry: RegistryDep) -> list[Language]:
    """Every language the server translates from or into, with its targets (Weblate
    supports a pair only when both codes are listed)."""
    targets: dict[str, set[str]] = {}
    for served in registry.models.values():
        targets.setdefault(served.source, set()).add(served.target)
        targets.setdefault(served.target, set())
    return [Language(code=c, name=name(c), targets=sorted(targets[c])) for c in sorted(targets)]


@router.get("/frontend/settings", response_model=FrontendSettings)
async def frontend_settings(settings: SettingsDep, registry: RegistryDep) -> FrontendSettings:
    """LibreTranslate's front-end settings: limits, whether keys are needed, file
    formats, and a default language pair."""
    sources, targets = registry.sources(), registry.targets()
    source = sources[0] if sources else "en"
    target = next((t for t in registry.targets() if t != source), targets[0] if targets else "en")
    return FrontendSettings(
        charLimit=settings.max_chars,
        frontendTimeout=int(settings.request_timeout_s * 1000),
        apiKeys=bool(settings.api_keys),
        keyRequired=bool(settings.api_keys),
        supportedFilesFormat=sorted(FORMATS),
        language={
            "source": {"code": source, "name": name(source)},
            "target": {"code": target, "name": name(target)},
        },
    )


@router.get("/spec")
async def spec(request: Request) -> JSONResponse:
    """The API description (LibreTranslate serves its Swagger spec here; this is the
    OpenAPI document, also at /openapi.json)."""
    return JSONResponse(request.app.openapi())
