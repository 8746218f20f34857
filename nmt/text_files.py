"""Reading text files, plain or gzipped, one sentence a line."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path


class TextFileError(ValueError):
    """A text file that cannot be read; the message says which and why."""


def open_text(path: Path) -> Iterator[str]:
    """The lines of a plain or gzipped (``.gz``) UTF-8 file, without line ends."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield line.rstrip("\r\n")


def read_lines(path: Path) -> list[str]:
    """All lines of a plain or gzipped UTF-8 file."""
    try:
        return list(open_text(path))
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise TextFileError(f"cannot read {path}: {err}") from err
