"""Placeholders: what a model must not translate is taken out of a sentence and put
back, verbatim, where the word alignment says.

URLs, e-mail addresses, @mentions, #hashtags, numbers, ``{{name}}``, ``{0}``,
``%1$s``, ``%s``, bracketed codes such as ``[X7X]``, and words the source vocabulary
cannot spell are removed before translation; each remembers the source word before
it (or, at the start, the one after it) and returns next to the target word aligned
to that word. Removing rather than replacing by a mask token works with any model:
one trained on plain sentences has never seen a mask token, and would garble it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# Characters of Unicode's private use area stand for markup kept as it is (see
# ``nmt.documents.html``): each is a placeholder of its own, and no other placeholder
# may swallow one.
MARKUP = "\ue000-\uf8ff"
_ANY = rf"[^\s{MARKUP}]"
_END = rf"[^\s.,;:!?'\"()\[\]{{}}<>{MARKUP}]"  # a URL does not end in punctuation
PATTERN = re.compile(
    "|".join(
        [
            f"[{MARKUP}]",
            rf"(?:https?|ftp)://{_ANY}*{_END}",  # URL
            rf"www\.{_ANY}*{_END}",
            r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # e-mail address
            r"(?<![\w@])@\w+(?:@[\w-]+(?:\.[\w-]+)+)?",  # @mention, @user@host
            r"(?<![\w#&])#\w+",  # hashtag
            rf"\{{\{{[^{{}}{MARKUP}]*\}}\}}",  # {{name}}
            r"\{\w*\}",  # {0}, {name}, {}
            r"%\d+\$[a-z@]",  # %1$s
            r"%[sdif@]",  # %s
            rf"\[[^\[\]\s{MARKUP}]{{1,24}}\]",  # [X7X]
            r"(?<!\w)[-+]?\d+(?:[.,:/]\d+)*(?!\w)",  # numbers, times, dates
        ]
    )
)


@dataclass(frozen=True)
class Placeholder:
    """``text``, taken out after source word ``after`` (-1: before the first word);
    ``start`` is where it was in the sentence."""

    text: str
    after: int
    start: int


@dataclass(frozen=True)
class Masked:
    """A sentence without its placeholders: its words (with where each was in the
    sentence, ``spans``) and the placeholders in order."""

    words: list[str]
    spans: list[tuple[int, int]]
    placeholders: list[Placeholder]

    @property
    def text(self) -> str:
        return " ".join(self.words)


def mask(sentence: str, unknown: Callable[[str], bool] | None = None) -> Masked:
    """Take the placeholders out of ``sentence``; ``unknown(word)`` marks words the
    model's vocabulary cannot spell, which are kept verbatim the same way. What is
    left of a word around a placeholder (``(``, ``.``) stays in the sentence."""
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    placeholders: list[Placeholder] = []
    for token in re.finditer(r"\S+", sentence):
        if unknown is not None and unknown(token.group()) and not PATTERN.search(token.group()):
            placeholders.append(Placeholder(token.group(), len(words) - 1, token.start()))
            continue
        position = token.start()
        for match in PATTERN.finditer(sentence, token.start(), token.end()):
            if match.start() > position:
                words.append(sentence[position : match.start()])
                spans.append((position, match.start()))
            placeholders.append(Placeholder(match.group(), len(words) - 1, match.start()))
            position = match.end()
        if token.end() > position:
            words.append(sentence[position : token.end()])
            spans.append((position, token.end()))
    return Masked(words, spans, placeholders)


def restore(
    target_words: list[T],
    alignment: list[tuple[int, int]],
    placeholders: list[Placeholder],
    word: Callable[[Placeholder], T],
) -> list[T]:
    """``target_words`` with every placeholder back as a word of its own, made by
    ``word(placeholder)``.

    A placeholder that followed source word ``s`` follows the last target word aligned
    to ``s`` (or, if none is, to the nearest source word before it that has one);
    one with none before it goes first.

    Args:
        alignment: (source word, target word) pairs.
    """
    last_target: dict[int, int] = {}
    for src, tgt in alignment:
        last_target[src] = max(last_target.get(src, -1), tgt)
    slots: dict[int, list[T]] = {}  # target position -> placeholders that go before it
    for placeholder in placeholders:
        position = 0
        for src in range(placeholder.after, -1, -1):
            if src in last_target:
                position = last_target[src] + 1
                break
        slots.setdefault(position, []).append(word(placeholder))
    out: list[T] = []
    for i in range(len(target_words) + 1):
        out += slots.get(i, [])
        if i < len(target_words):
            out.append(target_words[i])
    return out
