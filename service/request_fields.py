"""LibreTranslate's way of taking parameters: from the query string, a form
(urlencoded or multipart) or a JSON object, alike (it reads Flask's
``request.values`` or the JSON body). Some clients POST with no body at all."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from service.errors import APIError

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _from_multi(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A repeated ``q`` is a list; any other repeated field keeps its first value."""
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key == "q" and key in fields:
            first = fields[key]
            fields[key] = [*first, value] if isinstance(first, list) else [first, value]
        else:
            fields.setdefault(key, value)
    return fields


async def request_fields(request: Request) -> dict[str, Any]:
    """The request's parameters: the query string, overridden by a JSON object or a
    form body. Uploaded files come as ``UploadFile`` values.

    Raises:
        APIError: 400 for a body that is not JSON, not an object, or of another type.
    """
    fields = _from_multi(list(request.query_params.multi_items()))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        form = await request.form()
        fields.update(_from_multi(list(form.multi_items())))
        return fields
    body = await request.body()
    if not body.strip():
        return fields
    if content_type not in ("application/json", "") and not content_type.endswith("+json"):
        raise APIError(
            400, f"send the parameters as JSON, a form or a query string, not {content_type}"
        )
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise APIError(400, f"Invalid JSON format: {err}") from err
    if not isinstance(parsed, dict):
        raise APIError(400, "Invalid JSON format: the body must be an object")
    fields.update(parsed)
    return fields


def text_field(fields: dict[str, Any], name: str) -> str | None:
    """A field that must be a string when present."""
    value = fields.get(name)
    if value is None or isinstance(value, str):
        return value
    raise APIError(400, f"Invalid request: {name} must be a string", name)


def int_field(fields: dict[str, Any], name: str, default: int) -> int:
    """A whole number sent as a number or as text."""
    value = fields.get(name, default)
    if isinstance(value, bool) or value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise APIError(400, f"Invalid request: {name} parameter is not a number", name) from err


def upload_field(fields: dict[str, Any], name: str) -> UploadFile | None:
    value = fields.get(name)
    return value if isinstance(value, UploadFile) else None
