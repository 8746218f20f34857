"""Keeps API keys out of the logs: the access log's query strings and any line that
happens to quote a configured key."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_QUERY_KEY = re.compile(r"(api_key=)[^&\s\"']*", re.IGNORECASE)
REDACTED = "[redacted]"


class KeyRedactor(logging.Filter):
    """A handler filter that rewrites records in place, so every formatter (uvicorn's
    access formatter reads the record's arguments) sees only redacted text."""

    def __init__(self, keys: Iterable[str]) -> None:
        super().__init__()
        # longest first, so that a key containing another is replaced whole
        self._keys = sorted({k for k in keys if k}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        text = _QUERY_KEY.sub(r"\1" + REDACTED, text)
        for key in self._keys:
            text = text.replace(key, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact(a) if isinstance(a, str) else a for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def redact_all_handlers(keys: Iterable[str], loggers: Iterable[str]) -> KeyRedactor:
    """Put one redactor on every handler of the root logger and of ``loggers``."""
    redactor = KeyRedactor(keys)
    for name in ("", *loggers):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(redactor)
    return redactor
