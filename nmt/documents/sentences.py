"""Texts as sentences and back: the units a sentence-level model translates, with
everything between them (spaces, line breaks, blank lines) kept exactly.

A model trained on single sentences drops or garbles the rest of a paragraph; so a
text is cut at line breaks, each line into sentences by ``sentencex`` (rules for
~300 languages), and a sentence still longer than ``max_chars`` at the last space
before the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sentencex import segment

# A break between paragraphs or lines: any whitespace run that holds a line break.
LINE_BREAK = re.compile(r"\s*\n\s*")


@dataclass(frozen=True)
class Segmented:
    """A text cut into sentences: ``gaps[i]`` is what stands before sentence ``i``
    and ``gaps[-1]`` what follows the last one, so that
    ``gaps[0] + s[0] + gaps[1] + ... + s[-1] + gaps[-1]`` is the text."""

    sentences: list[str]
    gaps: list[str]

    def join(self, translated: list[str]) -> str:
        """The text with sentence ``i`` replaced by ``translated[i]``."""
        if len(translated) != len(self.sentences):
            raise ValueError(f"{len(translated)} translations for {len(self.sentences)} sentences")
        parts = [self.gaps[0]]
        for sentence, gap in zip(translated, self.gaps[1:], strict=True):
            parts += [sentence, gap]
        return "".join(parts)


def split_sentences(text: str, language: str, max_chars: int = 400) -> Segmented:
    """Cut ``text`` (in ``language``, an ISO 639-1 code) into sentences of at most
    ``max_chars`` characters (a longer run without a space stays whole)."""
    spans: list[tuple[int, int]] = []
    line_start = 0
    for match in [*LINE_BREAK.finditer(text), None]:
        line_stop = len(text) if match is None else match.start()
        spans += _sentence_spans(text, line_start, line_stop, language, max_chars)
        if match is not None:
            line_start = match.end()
    bounds = [0, *(i for span in spans for i in span), len(text)]
    gaps = [text[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2)]
    return Segmented([text[a:b] for a, b in spans], gaps)


def _sentence_spans(
    text: str, start: int, stop: int, language: str, max_chars: int
) -> list[tuple[int, int]]:
    """(start, stop) in ``text`` of every sentence of the line ``text[start:stop]``."""
    spans: list[tuple[int, int]] = []
    cursor = start
    for found_sentence in segment(language, text[start:stop]):
        sentence = found_sentence.strip()
        if not sentence:
            continue
        found = text.find(sentence, cursor, stop)
        if found < 0:  # changed by the splitter: the rest of the line stays one sentence
            break
        spans += _by_length(text, found, found + len(sentence), max_chars)
        cursor = found + len(sentence)
    rest = text[cursor:stop]
    if rest.strip():
        first = cursor + len(rest) - len(rest.lstrip())
        spans += _by_length(text, first, cursor + len(rest.rstrip()), max_chars)
    return spans


def _by_length(text: str, start: int, stop: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut ``text[start:stop]`` at spaces into pieces of at most ``max_chars``."""
    pieces = []
    while stop - start > max_chars:
        cut = text.rfind(" ", start + 1, start + max_chars + 1)
        if cut < 0:
            break  # no space to cut at: the piece stays longer
        pieces.append((start, len(text[:cut].rstrip())))
        start = cut + 1
        while start < stop and text[start].isspace():
            start += 1
    pieces.append((start, stop))
    return pieces
