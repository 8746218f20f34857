"""Word-level alignments and confidence from subword attention.

SentencePiece marks the first piece of every word with "▁" (U+2581); pieces
without it continue the previous word.
"""

from __future__ import annotations

import torch

WORD_START = "\u2581"


def word_ids(pieces: list[str]) -> list[int]:
    """The word index of every piece: ['▁a', 'b', '▁c'] -> [0, 0, 1]."""
    ids: list[int] = []
    for piece in pieces:
        new_word = piece.startswith(WORD_START) or not ids
        ids.append((ids[-1] + 1 if ids else 0) if new_word else ids[-1])
    return ids


def words(pieces: list[str]) -> list[str]:
    """Join pieces into the words they spell (without the word-start marks)."""
    out: list[str] = []
    for piece, w in zip(pieces, word_ids(pieces), strict=True):
        text = piece.replace(WORD_START, "")
        if w == len(out):
            out.append(text)
        else:
            out[w] += text
    return out


def word_attention(
    attention: torch.Tensor, src_pieces: list[str], tgt_pieces: list[str]
) -> torch.Tensor:
    """Subword attention (T_sub, S_sub) -> word attention (T_words, S_words).

    Columns of a source word are summed (attention mass it received); rows of a
    target word are averaged, so every row still sums to 1. Rows beyond the target
    pieces (the EOS row) are dropped.
    """
    attention = attention[: len(tgt_pieces), : len(src_pieces)].float()
    src_ids = torch.tensor(word_ids(src_pieces), dtype=torch.long)
    tgt_ids = torch.tensor(word_ids(tgt_pieces), dtype=torch.long)
    n_src = int(src_ids.max()) + 1 if len(src_pieces) else 0
    n_tgt = int(tgt_ids.max()) + 1 if len(tgt_pieces) else 0
    by_src = attention.new_zeros(attention.size(0), n_src).index_add_(1, src_ids, attention)
    summed = by_src.new_zeros(n_tgt, n_src).index_add_(0, tgt_ids, by_src)
    counts = torch.bincount(tgt_ids, minlength=n_tgt).clamp(min=1).unsqueeze(1)
    return summed / counts


def hard_alignment(word_attn: torch.Tensor) -> list[tuple[int, int]]:
    """(source word, target word) pairs: every target word to its most attended source word."""
    if word_attn.numel() == 0:
        return []
    best = word_attn.argmax(dim=1).tolist()
    return [(src, tgt) for tgt, src in enumerate(best)]


def confidence(log_prob: float, n_tokens: int, attention: torch.Tensor | None) -> float:
    """A value in [0, 1]: geometric-mean token probability times attention coverage.

    Coverage is the mean over source subwords of min(1, attention received); a
    translation that ignores part of the source scores lower.

    Args:
        log_prob: summed log-probability of the hypothesis (EOS included).
        n_tokens: number of scored tokens (EOS included).
        attention: (T, S) subword attention, or None to skip the coverage term.
    """
    token_prob = float(torch.tensor(log_prob / max(n_tokens, 1)).exp())
    if attention is None or attention.numel() == 0:
        return token_prob
    coverage = float(attention.float().sum(dim=0).clamp(max=1.0).mean())
    return token_prob * coverage
