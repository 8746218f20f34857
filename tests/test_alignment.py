"""Subword-to-word alignment and confidence."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.alignment import confidence, hard_alignment, word_attention, word_ids, words


def test_word_ids_and_words() -> None:
    pieces = ["\u2581a", "b", "\u2581c", "\u2581d", "e", "f"]
    assert word_ids(pieces) == [0, 0, 1, 2, 2, 2]
    assert words(pieces) == ["ab", "c", "def"]
    assert word_ids(["x", "\u2581y"]) == [0, 1]  # a leading continuation piece is a word


def test_word_attention_sums_sources_and_averages_targets() -> None:
    src = ["\u2581big", "ger", "\u2581dog"]  # words: bigger, dog
    tgt = ["\u2581gro", "\u00dfer", "\u2581Hund"]  # words: großer, Hund
    attn = torch.tensor(
        [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]  # last row: EOS
    )
    word = word_attention(attn, src, tgt)
    assert word.shape == (2, 2)
    torch.testing.assert_close(word, torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
    torch.testing.assert_close(word.sum(1), torch.ones(2))
    assert hard_alignment(word) == [(0, 0), (1, 1)]


def test_confidence_is_lower_when_the_source_is_ignored() -> None:
    covered = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    ignored = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert confidence(-1.0, 2, covered) > confidence(-1.0, 2, ignored)
    assert confidence(-1.0, 2, None) == pytest.approx(math.exp(-0.5))
    assert 0.0 <= confidence(-50.0, 3, ignored) <= confidence(0.0, 3, covered) <= 1.0
