"""A plain text to translate: its sentences, each without its placeholders, and how
to put the translations back together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nmt.alignment import WORD_START, word_ids
from nmt.documents.placeholders import Masked, mask, restore
from nmt.documents.sentences import Segmented, split_sentences
from nmt.translator import Translation

UNKNOWN_PIECE = "<unk>"


@dataclass(frozen=True)
class TextJob:
    """``sources`` go to the model; ``finish`` turns their translations into the text."""

    segmented: Segmented
    masked: list[Masked]

    @classmethod
    def plan(
        cls,
        text: str,
        language: str,
        unknown: Callable[[str], bool] | None = None,
        max_sentence_chars: int = 400,
    ) -> TextJob:
        segmented = split_sentences(text, language, max_sentence_chars)
        return cls(segmented, [mask(s, unknown) for s in segmented.sentences])

    @property
    def sources(self) -> list[str]:
        return [m.text for m in self.masked]

    def finish(self, translations: list[Translation]) -> str:
        """The translated text: placeholders back, unknown target words copied from the
        source, original whitespace between the sentences."""
        pairs = zip(self.masked, translations, strict=True)
        return self.segmented.join([sentence_text(m, t) for m, t in pairs])

    def alternatives(self, translations: list[Translation], count: int) -> list[str]:
        """Up to ``count`` other translations of the text: the i-th takes each
        sentence's i-th alternative where it has one (and no placeholders), else its best."""
        out: list[str] = []
        best = self.finish(translations)
        for i in range(1, count + 1):
            sentences = []
            for m, t in zip(self.masked, translations, strict=True):
                other = i < len(t.n_best) and not m.placeholders
                sentences.append(t.n_best[i][0] if other else sentence_text(m, t))
            text = self.segmented.join(sentences)
            if text not in out and text != best:
                out.append(text)
        return out


def sentence_text(masked: Masked, t: Translation) -> str:
    """One sentence's translation with its placeholders and unknown words restored."""
    if not masked.placeholders and UNKNOWN_PIECE not in t.target_tokens:
        return t.text
    words = restore(copy_unknown(t), t.alignment, masked.placeholders, lambda p: p.text)
    return " ".join(words)


def copy_unknown(t: Translation) -> list[str]:
    """The target words with every ``<unk>`` piece replaced by the source word it
    attends to most (OpenNMT-py's ``replace_unk``)."""
    if UNKNOWN_PIECE not in t.target_tokens or t.attention is None:
        return list(t.target_words)
    source_word = word_ids(t.source_tokens)
    target_word = word_ids(t.target_tokens)
    words = [""] * len(t.target_words)
    for i, piece in enumerate(t.target_tokens):
        text = piece.replace(WORD_START, "")
        if piece == UNKNOWN_PIECE:
            row = t.attention[i][: len(t.source_tokens)]
            src = source_word[max(range(len(row)), key=row.__getitem__)] if row else None
            text = t.source_words[src] if src is not None else ""
        words[target_word[i]] += text
    return words


def merged(translations: list[Translation], segmented: Segmented) -> Translation:
    """One Translation for a text of several sentences: text with the original
    whitespace, tokens and words concatenated, alignments indexing the words of the
    whole text, attention block-diagonal (each sentence's rows, EOS included, over its
    own source tokens), score and confidence averaged over the sentences."""
    if len(translations) == 1 and segmented.gaps == ["", ""]:
        return translations[0]
    out = Translation(
        text=segmented.join([t.text for t in translations]),
        score=sum(t.score for t in translations) / max(len(translations), 1),
        confidence=sum(t.confidence for t in translations) / max(len(translations), 1),
        source_tokens=[p for t in translations for p in t.source_tokens],
        target_tokens=[p for t in translations for p in t.target_tokens],
        attention=_block_diagonal([t.attention for t in translations]),
        source_words=[w for t in translations for w in t.source_words],
        target_words=[w for t in translations for w in t.target_words],
        word_attention=_block_diagonal([t.word_attention for t in translations]),
    )
    src, tgt = 0, 0
    for t in translations:
        out.alignment += [(s + src, g + tgt) for s, g in t.alignment]
        src, tgt = src + len(t.source_words), tgt + len(t.target_words)
    out.n_best = [(out.text, out.score)]
    return out


def _block_diagonal(blocks: list[list[list[float]] | None]) -> list[list[float]] | None:
    if any(b is None for b in blocks):
        return None
    width = sum(len(b[0]) if b else 0 for b in blocks if b is not None)
    rows: list[list[float]] = []
    left = 0
    for block in blocks:
        assert block is not None
        cols = len(block[0]) if block else 0
        rows += [[0.0] * left + row + [0.0] * (width - left - cols) for row in block]
        left += cols
    return rows
