"""Greedy and beam search as plain functions over the model's search interface.

The model needs ``encode(src, src_lengths) -> (memory, state)`` and
``step(prev, memory, state) -> (log_probs, attention, state)``, where memory and
state have ``select(index)``. Everything is batched: beams live as flat
``batch*beam`` rows of the state, and sentences leave the batch when they are
finished. Memory keeps one row per sentence: ``step`` must accept a state with k
consecutive rows (beams) per memory row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

Penalty = Literal["average", "gnmt"]


class Selectable(Protocol):
    def select(self, index: torch.Tensor) -> Selectable: ...


class SearchModel(Protocol):
    """What search needs of a model (``Seq2Seq``, or the ``InferenceModel`` prepared
    from it); memory and state are opaque ``Selectable`` objects."""

    @property
    def pad_id(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Any, Any]: ...

    def step(
        self, prev: torch.Tensor, memory: Any, state: Any
    ) -> tuple[torch.Tensor, torch.Tensor, Any]: ...


@dataclass
class Hypothesis:
    """One translation: ids without BOS/EOS, normalized and raw scores, attention (T+1, S).

    The attention has one row per output token plus one for EOS, and one column per
    real source token.
    """

    tokens: list[int]
    score: float
    log_prob: float
    attention: torch.Tensor | None


@dataclass(frozen=True)
class SearchConfig:
    """Decoding options; the maximum output length is ``max_len_a * src_len + max_len_b``."""

    beam_size: int = 5
    alpha: float = 1.0
    penalty: Penalty = "average"
    n_best: int = 1
    max_len_a: float = 1.5
    max_len_b: int = 10
    min_len: int = 0
    no_repeat_ngram: int = 0
    return_attention: bool = True
    max_length: int | None = None  # a cap on the limit above, whatever the source length


# The defaults of every decoder: ``nmt translate``/``evaluate`` and ``nmt serve`` take
# theirs from here.
DEFAULT_SEARCH = SearchConfig()
# Length normalization exponents that callers may ask for.
MIN_ALPHA, MAX_ALPHA = 0.0, 2.0


def length_penalty(length: torch.Tensor, alpha: float, penalty: Penalty) -> torch.Tensor:
    """Denominator of the normalized score; ``length`` counts tokens including EOS.

    ``average``: length**alpha (alpha 1 = per-token mean, 0 = raw sum);
    ``gnmt``: ((5 + length) / 6)**alpha (Wu et al., 2016).
    """
    length = length.float()
    if penalty == "gnmt":
        return ((5.0 + length) / 6.0) ** alpha
    return length**alpha


def _max_lengths(src_lengths: torch.Tensor, cfg: SearchConfig) -> torch.Tensor:
    """Each sentence's output limit in tokens (EOS included).

    Raises:
        ValueError: a source of zero tokens (attention would have nothing to attend
            to; ``decode_ids`` answers those without searching).
    """
    if bool((src_lengths < 1).any()):
        raise ValueError("search needs sources of at least one token")
    limits = (src_lengths.float() * cfg.max_len_a + cfg.max_len_b).long()
    return limits.clamp(min=1, max=cfg.max_length)


def _restrict(
    log_probs: torch.Tensor, t: int, max_len: torch.Tensor, eos: int, min_len: int
) -> torch.Tensor:
    """Force EOS at the length limit and forbid it before ``min_len``.

    log_probs: (R, V); max_len: (R,) limit of each row.
    """
    if t < min_len:
        log_probs[:, eos] = float("-inf")
    at_limit = t + 1 >= max_len
    if at_limit.any():
        eos_col = log_probs[:, eos].clone()
        log_probs[at_limit] = float("-inf")
        log_probs[at_limit, eos] = torch.where(
            torch.isfinite(eos_col[at_limit]),
            eos_col[at_limit],
            torch.zeros_like(eos_col[at_limit]),
        )
    return log_probs


def _block_ngrams(log_probs: torch.Tensor, history: torch.Tensor, n: int) -> None:
    """Ban tokens that would repeat an n-gram of ``history`` (R, t) in place."""
    if n <= 0 or history.size(1) < n:
        return
    grams = history.unfold(1, n, 1)  # R x G x n
    prefix = history[:, history.size(1) - n + 1 :].unsqueeze(1)  # R x 1 x n-1
    match = (grams[:, :, :-1] == prefix).all(-1)  # R x G
    rows, which = match.nonzero(as_tuple=True)
    log_probs[rows, grams[rows, which, -1]] = float("-inf")


def _trim_attention(attn: torch.Tensor | None, src_len: int) -> torch.Tensor | None:
    return None if attn is None else attn[:, :src_len].float().cpu()


@torch.inference_mode()
def greedy_search(
    model: SearchModel,
    src: torch.Tensor,
    src_lengths: torch.Tensor,
    bos: int,
    eos: int,
    cfg: SearchConfig = SearchConfig(beam_size=1),
) -> list[list[Hypothesis]]:
    """Batched greedy decoding.

    Args:
        src: (B, S) ids; src_lengths: (B,).

    Returns:
        For each sentence a one-element list with its hypothesis.
    """
    max_len = _max_lengths(src_lengths, cfg)
    memory, state = model.encode(src, src_lengths)
    batch, device = src.size(0), src.device
    limit = int(max_len.max())
    out = torch.full((batch, limit), eos, dtype=torch.long, device=device)
    attn_out = (
        src.new_zeros((batch, limit, src.size(1)), dtype=torch.float)
        if cfg.return_attention
        else None
    )
    log_prob = torch.zeros(batch, device=device)
    length = torch.full((batch,), limit, dtype=torch.long, device=device)
    alive = torch.arange(batch, device=device)
    prev = torch.full((batch,), bos, dtype=torch.long, device=device)
    for t in range(limit):
        logp, attn, state = model.step(prev, memory, state)
        logp = _restrict(logp, t, max_len[alive], eos, cfg.min_len)
        _block_ngrams(logp, out[alive, :t], cfg.no_repeat_ngram)
        best, tok = logp.max(dim=-1)
        out[alive, t] = tok
        log_prob[alive] += best
        if attn_out is not None:
            attn_out[alive, t] = attn.float()
        done = tok == eos
        length[alive[done]] = t + 1
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero().squeeze(1)
            alive, tok = alive[keep], tok[keep]
            memory, state = memory.select(keep), state.select(keep)
        prev = tok
    scores = log_prob / length_penalty(length, cfg.alpha, cfg.penalty)
    return [
        [
            _greedy_hypothesis(
                out[i], int(length[i]), scores[i], log_prob[i], attn_out, i, src_lengths
            )
        ]
        for i in range(batch)
    ]


def _greedy_hypothesis(
    out: torch.Tensor,
    length: int,
    score: torch.Tensor,
    log_prob: torch.Tensor,
    attn_out: torch.Tensor | None,
    i: int,
    src_lengths: torch.Tensor,
) -> Hypothesis:
    """Sentence ``i``'s hypothesis from its output row (limit,) of ``length`` tokens with EOS."""
    attention = None
    if attn_out is not None:
        attention = _trim_attention(attn_out[i, :length], int(src_lengths[i]))
    return Hypothesis(out[: length - 1].tolist(), float(score), float(log_prob), attention)


@dataclass
class _Beams:
    """Live hypotheses of the sentences still in the batch (Ba sentences x k beams)."""

    sentence: torch.Tensor  # Ba: original sentence index
    scores: torch.Tensor  # Ba x k: summed log-probabilities
    tokens: torch.Tensor  # Ba x k x t
    attention: torch.Tensor | None  # Ba x k x t x S

    @classmethod
    def start(cls, batch: int, k: int, src_len: int | None, device: torch.device) -> _Beams:
        """k beams per sentence before the first step; attention kept when ``src_len``."""
        scores = torch.full((batch, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # all beams start identical: only the first one is live
        return cls(
            sentence=torch.arange(batch, device=device),
            scores=scores,
            tokens=torch.empty((batch, k, 0), dtype=torch.long, device=device),
            attention=None
            if src_len is None
            else torch.zeros((batch, k, 0, src_len), dtype=torch.float, device=device),
        )

    def select(self, keep: torch.Tensor) -> _Beams:
        """The sentences in ``keep`` (N,)."""
        return _Beams(
            self.sentence[keep],
            self.scores[keep],
            self.tokens[keep],
            None if self.attention is None else self.attention[keep],
        )


def _extend(
    beams: _Beams,
    cand_scores: torch.Tensor,
    beam_idx: torch.Tensor,
    tok: torch.Tensor,
    is_eos: torch.Tensor,
    attn: torch.Tensor,
    eos: int,
) -> tuple[_Beams, torch.Tensor, torch.Tensor]:
    """Continue with the k best candidates (Ba x 2k) that do not end in EOS.

    Returns the extended beams, the state row (Ba*k,) each new beam continues, and the
    new beams' last tokens (Ba x k).
    """
    n_alive, k, t = beams.tokens.shape
    width = cand_scores.size(1)
    # EOS candidates sort after all others
    order = torch.arange(width, device=tok.device).expand_as(tok)
    pick = (order + is_eos.long() * width).argsort(dim=1)[:, :k]  # Ba x k
    src_beam = beam_idx.gather(1, pick)
    flat = (torch.arange(n_alive, device=tok.device).unsqueeze(1) * k + src_beam).view(-1)
    new_tok = tok.gather(1, pick)
    scores = cand_scores.gather(1, pick).masked_fill(new_tok == eos, float("-inf"))
    tokens = torch.cat(
        [beams.tokens.view(n_alive * k, t)[flat].view(n_alive, k, t), new_tok.unsqueeze(2)], dim=2
    )
    attention = None
    if beams.attention is not None:
        old = beams.attention.view(n_alive * k, t, attn.size(-1))[flat]
        attention = torch.cat([old, attn.float()[flat].unsqueeze(1)], dim=1).view(
            n_alive, k, t + 1, -1
        )
    return _Beams(beams.sentence, scores, tokens, attention), flat, new_tok


def _finalize(
    beams: _Beams,
    pos_ok: torch.Tensor,
    beam_idx: torch.Tensor,
    cand_scores: torch.Tensor,
    attn: torch.Tensor | None,
    *,
    t: int,
    cfg: SearchConfig,
    src_lengths: torch.Tensor,
    finished: list[list[Hypothesis]],
) -> None:
    """Set aside the EOS candidates marked in ``pos_ok`` (Ba x 2k) as finished hypotheses."""
    rows, cols = pos_ok.nonzero(as_tuple=True)
    if rows.numel() == 0:
        return
    beam = beam_idx[rows, cols]
    raw = cand_scores[rows, cols]
    norm = raw / length_penalty(torch.full_like(raw, t + 1), cfg.alpha, cfg.penalty)
    tokens = beams.tokens[rows, beam].tolist()
    for j, (r, sent) in enumerate(zip(rows.tolist(), beams.sentence[rows].tolist(), strict=True)):
        attention = None
        if attn is not None and beams.attention is not None:
            k = beams.scores.size(1)
            rows_attn = torch.cat([beams.attention[r, beam[j]], attn[r * k + beam[j]].unsqueeze(0)])
            attention = _trim_attention(rows_attn, int(src_lengths[sent]))
        finished[sent].append(Hypothesis(tokens[j], float(norm[j]), float(raw[j]), attention))


@torch.inference_mode()
def beam_search(
    model: SearchModel,
    src: torch.Tensor,
    src_lengths: torch.Tensor,
    bos: int,
    eos: int,
    cfg: SearchConfig = SearchConfig(),
) -> list[list[Hypothesis]]:
    """Batched beam search with length normalization and n-best lists.

    Each step keeps the 2k best candidates of every sentence, sets aside those that
    end in EOS among the k best, and continues with the k best that do not. A
    sentence is done when it has k finished hypotheses.

    Args:
        src: (B, S) ids; src_lengths: (B,).

    Returns:
        For each sentence its ``n_best`` hypotheses, best first.
    """
    k, device = cfg.beam_size, src.device
    batch = src.size(0)
    max_len = _max_lengths(src_lengths, cfg)
    memory, state = model.encode(src, src_lengths)
    state = state.select(torch.arange(batch, device=device).repeat_interleave(k))
    beams = _Beams.start(batch, k, src.size(1) if cfg.return_attention else None, device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    prev = torch.full((batch * k,), bos, dtype=torch.long, device=device)
    for t in range(int(max_len.max())):
        n_alive = beams.sentence.numel()
        logp, attn, state = model.step(prev, memory, state)  # Ba*k x V
        vocab = logp.size(-1)
        logp = _restrict(logp, t, max_len[beams.sentence].repeat_interleave(k), eos, cfg.min_len)
        _block_ngrams(logp, beams.tokens.view(n_alive * k, t), cfg.no_repeat_ngram)
        cand = (beams.scores.view(-1, 1) + logp).view(n_alive, k * vocab)
        cand_scores, cand_idx = cand.topk(min(2 * k, k * vocab), dim=1)  # Ba x 2k
        beam_idx, tok = cand_idx // vocab, cand_idx % vocab
        is_eos = (tok == eos) & torch.isfinite(cand_scores)
        top_k = torch.arange(cand_idx.size(1), device=device) < k
        finals = (is_eos & top_k, beam_idx, cand_scores, attn)
        _finalize(beams, *finals, t=t, cfg=cfg, src_lengths=src_lengths, finished=finished)
        beams, flat, new_tok = _extend(beams, cand_scores, beam_idx, tok, is_eos, attn, eos)
        done = torch.tensor([len(finished[s]) >= k for s in beams.sentence.tolist()], device=device)
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero().squeeze(1)
            flat = flat.view(n_alive, k)[keep].view(-1)
            beams = beams.select(keep)
            memory, new_tok = memory.select(keep), new_tok[keep]
        state = state.select(flat)  # reorder beams and drop finished sentences in one copy
        prev = new_tok.reshape(-1)
    return [sorted(hyps, key=lambda h: -h.score)[: cfg.n_best] for hyps in finished]
