"""Per-client request and character rates, as LibreTranslate's operators know them.

A client is its API key when it sends one (a hash of it: the limiter never holds the
key), else its address: the connection's peer, or, behind a proxy, the first address of
the configured trusted header. Moving one-minute windows from the ``limits`` library,
held in this process's memory.
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from service.errors import APIError
from service.settings import Settings


def client_identity(request: Request, settings: Settings, key: str | None) -> str:
    """Who is asking, for the rate limits."""
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:24]
    if settings.client_address_header:
        forwarded = request.headers.get(settings.client_address_header, "")
        first = forwarded.split(",")[0].strip()
        if first:
            return "addr:" + first
    return "addr:" + (request.client.host if request.client else "unknown")


class RateLimits:
    """The server's request and character limits; both off when not configured (and
    then cost a request nothing, not even working out who the client is)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._requests = _per_minute(settings.rate_limit_requests)
        self._chars = _per_minute(settings.rate_limit_chars)

    def count_request(self, request: Request, key: str | None) -> None:
        """Count one request of its client; raise 429 with Retry-After past the limit."""
        if self._requests is not None:
            client = client_identity(request, self._settings, key)
            self._hit(self._requests, client, 1, "requests")

    def count_characters(self, request: Request, key: str | None, characters: int) -> None:
        """Count ``characters`` to translate for the request's client; 429 past the
        limit (413 for a single request larger than a whole minute's allowance)."""
        if self._chars is None:
            return
        client = client_identity(request, self._settings, key)
        if characters > self._chars.amount:
            raise APIError(
                413,
                f"{characters} characters exceed the limit of {self._chars.amount} a minute",
                "q",
            )
        self._hit(self._chars, client, characters, "characters")

    def _hit(self, item: RateLimitItem, client: str, cost: int, what: str) -> None:
        if self._limiter.hit(item, client, cost=cost):
            return
        reset = self._limiter.get_window_stats(item, client).reset_time
        retry = max(1, math.ceil(reset - time.time()))
        raise APIError(
            429,
            f"rate limit: more than {item.amount} {what} a minute; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )


def _per_minute(amount: int | None) -> RateLimitItem | None:
    return None if amount is None else RateLimitItemPerMinute(amount)
