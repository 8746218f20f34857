"""What a request passes before any route reads it: the API key when it comes in a
header or the query string, the client's request rate, the body size and the JSON
nesting depth. The cheap checks come first; the body is read (and bounded) after them,
and handed on to the route unchanged."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import APIError, error_response
from service.rate_limits import RateLimits
from service.settings import Settings

# Routes that translate (and so need a key when keys are set, and count against rates).
TRANSLATION_PATHS = frozenset({"/v1/translate", "/translate", "/detect"})
# Of those, the ones whose body may carry the key (LibreTranslate's ``api_key`` field).
KEY_IN_BODY_PATHS = frozenset({"/translate", "/detect"})

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def key_outside_body(request: Request) -> str | None:
    """The API key from the ``X-API-Key`` header or the ``api_key`` query parameter."""
    return request.headers.get("x-api-key") or request.query_params.get("api_key")


def check_api_key(settings: Settings, key: str | None) -> None:
    """Raise 401/403 unless keys are off or ``key`` is one of them."""
    if not settings.api_keys:
        return
    if not key:
        raise APIError(401, "an API key is required (X-API-Key header or api_key)", "api_key")
    if not settings.key_is_valid(key):
        raise APIError(403, "invalid API key", "api_key")


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether a JSON text nests arrays and objects deeper than ``limit``.

    Brackets inside strings do not count. Linear in the body, and nearly free for
    bodies with few brackets, which is every ordinary request.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub(b"", body)):
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth > limit:
            return True
    return False


class RequestGuard:
    """Pure ASGI middleware (no body buffering beyond the size limit, no thread hop)."""

    def __init__(self, app: ASGIApp, settings: Settings, rate_limits: RateLimits) -> None:
        self.app = app
        self.settings = settings
        self.rate_limits = rate_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            if scope["path"] in TRANSLATION_PATHS:
                self._admit(request)
            if scope["method"] in ("POST", "PUT", "PATCH"):
                receive = await self._bounded_body(request, receive)
        except APIError as err:
            response = error_response(err.status, err.message, err.field, err.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _admit(self, request: Request) -> None:
        """Key (when not in the body) and request rate; raises APIError 401/403/429."""
        key = key_outside_body(request)
        if key or request.url.path not in KEY_IN_BODY_PATHS:  # else the route checks the body's
            check_api_key(self.settings, key)
        self.rate_limits.count_request(request, key)

    async def _bounded_body(self, request: Request, receive: Receive) -> Receive:
        """Read the body within ``max_body_bytes`` (413 beyond), check its JSON depth
        (400 beyond), and return a ``receive`` that hands it to the app."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise APIError(413, f"request body of {declared} bytes exceeds {limit} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(b"", receive, first=message)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                raise APIError(413, f"request body exceeds {limit} bytes")
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = request.headers.get("content-type", "")
        # forms carry brackets as text; FastAPI reads a body without a type as JSON
        is_json = not content_type or "json" in content_type.lower()
        if is_json and json_too_deep(body, self.settings.max_json_depth):
            raise APIError(
                400, f"JSON body nested deeper than {self.settings.max_json_depth} levels"
            )
        return _replay(body, receive)


def _replay(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    """A ``receive`` that gives ``body`` (or ``first``) once, then the real channel
    (where the app learns of a disconnect)."""
    pending: list[Message] = [first or {"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
