"""One JSON error shape for every failure, and the handlers that produce it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.schemas import ErrorResponse

log = logging.getLogger(__name__)


class APIError(Exception):
    """An answer other than success: status, message, the field at fault, extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers


def error_response(
    status: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorResponse(error=message, field=field).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def _is_union_tag(part: str) -> bool:
    """pydantic puts the union member a value failed against into the error location
    ('str', 'constrained-str', 'list[str]'); those are not field names."""
    return any(c in part for c in "-[") or part in {"str", "int", "float", "bool", "list"}


def _field_name(loc: tuple) -> str | None:
    """('body', 'text', 'list[constrained-str]', 1) -> 'text[1]'."""
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part not in ("body", "query", "form") and not _is_union_tag(part):
            name += f".{part}" if name else str(part)
    return name or None


def describe_validation_error(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """pydantic's error list -> ("field: problem; ...", the most specific field)."""
    parts, fields = [], []
    for err in errors:
        field = _field_name(tuple(err.get("loc", ())))
        fields.append(field or "")
        part = f"{field}: {err['msg']}" if field else str(err["msg"])
        if part not in parts:
            parts.append(part)
    return "; ".join(parts) or "invalid request", max(fields, key=len, default="") or None


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(exc.status, exc.message, exc.field, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, field = describe_validation_error(exc.errors())
    return error_response(422, message, field)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
