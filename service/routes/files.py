"""LibreTranslate's file translation: ``POST /translate_file`` (``.txt``, ``.html``)
answers with a URL, ``GET /download_file/{name}`` gives the translated file."""

from __future__ import annotations

from pathlib import PurePosixPath

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.dependencies import (
    RegistryDep,
    SettingsDep,
    choose_model,
    count_characters,
    search_options,
)
from service.documents import FORMATS, plan, translate_jobs
from service.errors import APIError
from service.guard import check_api_key, key_outside_body
from service.languages import resolve
from service.request_fields import request_fields, text_field, upload_field
from service.routes.libretranslate import language_field, libretranslate_errors
from service.routes.translate import ERRORS
from service.schemas import TranslatedFile
from service.translated_files import TranslatedFiles

router = APIRouter(tags=["LibreTranslate-compatible"])

MEDIA_TYPES = {"text": "text/plain; charset=utf-8", "html": "text/html; charset=utf-8"}


@router.post("/translate_file", response_model=TranslatedFile, responses=ERRORS)
async def translate_file(
    request: Request, settings: SettingsDep, registry: RegistryDep
) -> TranslatedFile:
    """Translate an uploaded ``.txt`` or ``.html`` file (multipart field ``file``)."""
    with libretranslate_errors():
        fields = await request_fields(request)
        key = key_outside_body(request) or text_field(fields, "api_key")
        check_api_key(settings, key)
        upload = upload_field(fields, "file")
        if upload is None:
            raise APIError(400, "Invalid request: missing file parameter", "file")
        filename = PurePosixPath(upload.filename or "").name
        fmt = FORMATS.get(PurePosixPath(filename).suffix.lower())
        if fmt is None:
            supported = ", ".join(sorted(FORMATS))
            raise APIError(400, f"Invalid request: file format not supported ({supported})", "file")
        try:
            text = (await upload.read()).decode("utf-8")
        except UnicodeDecodeError as err:
            raise APIError(400, "Invalid request: the file is not UTF-8 text", "file") from err
        if len(text) > settings.max_chars:
            raise APIError(
                400,
                f"Invalid request: file ({len(text)}) exceeds character limit "
                f"({settings.max_chars})",
                "file",
            )
        source, target = language_field(fields, "source"), language_field(fields, "target")
        served = choose_model(
            registry,
            None,
            resolve(source, set(registry.sources())) or source,
            resolve(target, set(registry.targets())) or target,
        )
        count_characters(request, [text], key)
        jobs = plan([text], fmt, served, settings)
        options = search_options(settings, None, None, 1, attention=True)
        (translations,) = await translate_jobs(request, served, jobs, options, "file")
        files: TranslatedFiles = request.app.state.files
        name = files.add(filename, jobs[0].finish(translations).encode("utf-8"))
    return TranslatedFile(translatedFileUrl=str(request.url_for("download_file", name=name)))


@router.get("/download_file/{name}", responses={404: ERRORS[400]})
async def download_file(request: Request, name: str) -> Response:
    """A file translated by ``/translate_file``, while the server still holds it."""
    files: TranslatedFiles = request.app.state.files
    content = files.get(name)
    if content is None:
        raise APIError(404, "no such translated file (files are kept for a while only)")
    original = name.split(".", 1)[1] if "." in name else name
    fmt = FORMATS.get(PurePosixPath(original).suffix.lower(), "text")
    return Response(
        content,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{original}"'},
    )
