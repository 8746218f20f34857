"""Translated files waiting to be downloaded (``/translate_file`` then
``/download_file/...``): kept in memory, the most recent ``limit`` of them."""

from __future__ import annotations

import secrets
from collections import OrderedDict


class TranslatedFiles:
    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._files: OrderedDict[str, bytes] = OrderedDict()

    def add(self, filename: str, content: bytes) -> str:
        """Keep ``content``; returns the name to download it by (unguessable)."""
        name = f"{secrets.token_urlsafe(16)}.{filename}"
        self._files[name] = content
        while len(self._files) > self.limit:
            self._files.popitem(last=False)
        return name

    def get(self, name: str) -> bytes | None:
        return self._files.get(name)
