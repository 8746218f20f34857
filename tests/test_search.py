"""Search basics: beam 1 is greedy, batching does not change results, limits hold."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from nmt.model import ModelConfig, Seq2Seq
from nmt.search import SearchConfig, beam_search, greedy_search, length_penalty

PAD, BOS, EOS = 0, 2, 3


@pytest.fixture
def model() -> Seq2Seq:
    torch.manual_seed(3)
    cfg = ModelConfig(emb_size=12, encoder_hidden=8, decoder_hidden=16, dropout=0.0)
    return Seq2Seq(cfg, src_vocab=20, tgt_vocab=12, pad_id=PAD).eval()


SRC = torch.tensor([[5, 6, 7, PAD], [4, 8, 9, 11], [7, PAD, PAD, PAD]])
LENGTHS = torch.tensor([3, 4, 1])
CFG = SearchConfig(max_len_a=1.0, max_len_b=4)


def test_beam_size_one_equals_greedy(model: Seq2Seq) -> None:
    greedy = greedy_search(model, SRC, LENGTHS, BOS, EOS, CFG)
    beam = beam_search(
        model, SRC, LENGTHS, BOS, EOS, SearchConfig(beam_size=1, max_len_a=1.0, max_len_b=4)
    )
    for g, b in zip(greedy, beam, strict=True):
        assert g[0].tokens == b[0].tokens
        assert g[0].score == pytest.approx(b[0].score, abs=1e-5)
        torch.testing.assert_close(g[0].attention, b[0].attention)


@pytest.mark.parametrize("beam_size", [1, 3, 5])
def test_batched_equals_one_sentence_at_a_time(model: Seq2Seq, beam_size: int) -> None:
    cfg = SearchConfig(beam_size=beam_size, n_best=beam_size, max_len_a=1.0, max_len_b=4)
    search = greedy_search if beam_size == 1 else beam_search
    batched = search(model, SRC, LENGTHS, BOS, EOS, cfg)
    for i in range(SRC.size(0)):
        alone = search(model, SRC[i : i + 1, : LENGTHS[i]], LENGTHS[i : i + 1], BOS, EOS, cfg)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[i]], abs=1e-5)


def test_n_best_is_sorted_distinct_and_respects_the_length_limit(model: Seq2Seq) -> None:
    cfg = SearchConfig(beam_size=4, n_best=4, max_len_a=1.0, max_len_b=2)
    for i, hyps in enumerate(beam_search(model, SRC, LENGTHS, BOS, EOS, cfg)):
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps)
        for h in hyps:
            assert len(h.tokens) + 1 <= int(LENGTHS[i]) + 2
            assert EOS not in h.tokens
            assert h.attention.shape == (len(h.tokens) + 1, int(LENGTHS[i]))
            torch.testing.assert_close(h.attention.sum(1), torch.ones(len(h.tokens) + 1))


def test_length_penalty_forms() -> None:
    length = torch.tensor([4.0])
    assert length_penalty(length, 0.0, "average").item() == 1.0
    assert length_penalty(length, 1.0, "average").item() == 4.0
    assert length_penalty(length, 1.0, "gnmt").item() == pytest.approx(9 / 6)


# ----------------------------------------------------------- scripted model
A, B = 4, 5
VOCAB = 6  # pad, unk, bos, eos, a, b
SCRIPT = {  # next-token probabilities after each prefix
    (): {A: 0.5, B: 0.4, EOS: 0.1},
    (A,): {A: 0.36, B: 0.34, EOS: 0.3},
    (B,): {EOS: 0.6, A: 0.2, B: 0.2},
}


class Prefixes:
    """Decoder 'state' of the scripted model: the tokens generated so far (R x t)."""

    def __init__(self, tokens: torch.Tensor) -> None:
        self.tokens = tokens

    def select(self, index: torch.Tensor) -> Prefixes:
        return Prefixes(self.tokens[index])


class ScriptedModel:
    """A search model whose step probabilities are fixed by SCRIPT (EOS after 2 tokens)."""

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Prefixes, Prefixes]:
        memory = Prefixes(torch.ones(src.size(0), src.size(1)))
        return memory, Prefixes(torch.empty(src.size(0), 0, dtype=torch.long))

    def step(
        self, prev: torch.Tensor, memory: Prefixes, state: Prefixes
    ) -> tuple[torch.Tensor, torch.Tensor, Prefixes]:
        first_step = bool((prev == BOS).all())
        tokens = state.tokens if first_step else torch.cat([state.tokens, prev[:, None]], dim=1)
        probs = torch.zeros(prev.size(0), VOCAB)
        for row, prefix in enumerate(tokens.tolist()):
            for token, p in SCRIPT.get(tuple(prefix), {EOS: 1.0}).items():
                probs[row, token] = p
        attention = memory.tokens / memory.tokens.sum(1, keepdim=True)
        # beam search keeps one memory row per sentence for its k consecutive beams
        attention = attention.repeat_interleave(prev.size(0) // memory.tokens.size(0), dim=0)
        return probs.log(), attention, Prefixes(tokens)


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (0.0, [([B], math.log(0.24)), ([A, A], math.log(0.18)), ([A, B], math.log(0.17))]),
        (
            1.0,
            [([A, A], math.log(0.18) / 3), ([A, B], math.log(0.17) / 3), ([B], math.log(0.24) / 2)],
        ),
    ],
)
def test_beam_search_matches_hand_computed_hypotheses(alpha: float, expected: list) -> None:
    cfg = SearchConfig(beam_size=2, n_best=3, alpha=alpha, max_len_a=0.0, max_len_b=3)
    src, lengths = torch.tensor([[7]]), torch.tensor([1])
    hyps = beam_search(ScriptedModel(), src, lengths, BOS, EOS, cfg)[0]
    assert [h.tokens for h in hyps] == [tokens for tokens, _ in expected]
    assert [h.score for h in hyps] == pytest.approx([score for _, score in expected])
    # greedy follows the locally best token: a, then a, then EOS
    greedy = greedy_search(ScriptedModel(), src, lengths, BOS, EOS, cfg)[0][0]
    assert greedy.tokens == [A, A]


# ------------------------------------------------------- exhaustive search
@torch.no_grad()
def _sequence_log_prob(model: Seq2Seq, src: torch.Tensor, tokens: list[int]) -> float:
    """log P(tokens + EOS | src) by stepping the model through the sequence."""
    memory, state = model.encode(src, torch.tensor([src.size(1)]))
    total, prev = 0.0, BOS
    for token in [*tokens, EOS]:
        logp, _, state = model.step(torch.tensor([prev]), memory, state)
        total += float(logp[0, token])
        prev = token
    return total


def _best_by_enumeration(
    model: Seq2Seq, src: torch.Tensor, vocab: int, max_len: int, alpha: float
) -> tuple[list[int], float]:
    """The best sequence of at most ``max_len`` tokens (EOS included) under length^alpha."""
    best: tuple[list[int], float] = ([], float("-inf"))
    non_eos = [t for t in range(vocab) if t != EOS]
    for n in range(max_len):
        for tokens in itertools.product(non_eos, repeat=n):
            score = _sequence_log_prob(model, src, list(tokens)) / (n + 1) ** alpha
            if score > best[1]:
                best = (list(tokens), score)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("max_len", [2, 3, 4])
def test_wide_beam_finds_the_enumerated_optimum(seed: int, alpha: float, max_len: int) -> None:
    """Beam search over a vocabulary of 6 returns the optimum of all sequences.

    With a limit of one token plus EOS, a beam as wide as the vocabulary holds every
    candidate. Longer limits need a beam of V^(len-1) to hold every candidate of every
    step; with less, beam search is a heuristic (beam 2 misses the optimum here for
    about half of these models, and greedy for more than half).
    """
    vocab = 6  # pad, unk, bos, eos and two words
    torch.manual_seed(seed)
    cfg = ModelConfig(emb_size=8, encoder_hidden=6, decoder_hidden=12, dropout=0.0)
    model = Seq2Seq(cfg, src_vocab=9, tgt_vocab=vocab, pad_id=PAD).eval()
    with torch.no_grad():  # sharper, prefix-dependent distributions make the search non-trivial
        for param in model.parameters():
            param.mul_(3.0)
        model.generator.weight.mul_(3.0)
    src = torch.tensor([[5, 6, 7]])
    expected_tokens, expected_score = _best_by_enumeration(model, src, vocab, max_len, alpha)
    search = SearchConfig(
        beam_size=vocab ** (max_len - 1), alpha=alpha, max_len_a=0.0, max_len_b=max_len
    )
    best = beam_search(model, src, torch.tensor([3]), BOS, EOS, search)[0][0]
    assert best.tokens == expected_tokens
    assert best.score == pytest.approx(expected_score, abs=1e-4)
