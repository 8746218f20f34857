"""Attention scoring: additive (Bahdanau) and multiplicative (Luong dot / general).

The key projection depends only on the encoder output, so it is computed once per
sentence (``project_keys``) and reused at every decoder step and every beam.
"""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    """Base class: ``scores(query, keys)`` differs, the masking and softmax do not."""

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        """memory: (B, S, M) encoder states -> keys: (B, S, K) in the scoring space."""
        raise NotImplementedError

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query: (B, g, Q), keys: (B, S, K) -> unnormalized scores (B, g, S)."""
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend over the encoder states.

        Each sentence's memory row may serve g consecutive query rows (the beams of
        beam search), so that the encoder states are neither copied per beam nor
        read once per beam: the g queries of a sentence share one matrix product.

        Args:
            query: (B*g, Q) decoder states.
            keys: (B, S, K) output of ``project_keys``.
            memory: (B, S, M) encoder states that are averaged.
            src_mask: (B, S) True on real source tokens, False on padding.

        Returns:
            context (B*g, M) and attention weights (B*g, S), zero on padding, rows
            summing to 1.
        """
        batch = keys.size(0)
        scores = self.scores(query.view(batch, -1, query.size(-1)), keys)  # B x g x S
        scores = scores.masked_fill(~src_mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # B x g x S
        context = torch.bmm(weights, memory)  # B x g x M
        return context.flatten(0, 1), weights.flatten(0, 1)


class AdditiveAttention(Attention):
    """Bahdanau et al. (2015): score = v . tanh(W_k k + W_q q)."""

    def __init__(self, query_size: int, memory_size: int, attention_size: int) -> None:
        super().__init__()
        self.key_layer = nn.Linear(memory_size, attention_size, bias=False)
        self.query_layer = nn.Linear(query_size, attention_size, bias=False)
        self.energy_layer = nn.Linear(attention_size, 1, bias=False)

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key_layer(memory)

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        # B x g x S x A
        energy = torch.tanh(keys.unsqueeze(1) + self.query_layer(query).unsqueeze(2))
        return self.energy_layer(energy).squeeze(-1)


class DotAttention(Attention):
    """Luong et al. (2015) ``dot``: score = q . k; needs query and memory of equal size."""

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__()
        if query_size != memory_size:
            raise ValueError(
                f"dot attention needs decoder size ({query_size}) == encoder output size "
                f"({memory_size}); use 'general' or 'bahdanau' instead"
            )

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        return memory

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        # keys first: with g = 1 (training) this is a matrix-vector product per sentence
        return torch.bmm(keys, query.transpose(1, 2)).transpose(1, 2)


class GeneralAttention(DotAttention):
    """Luong et al. (2015) ``general``: score = q . W k, with W k precomputed per sentence."""

    def __init__(self, query_size: int, memory_size: int) -> None:
        nn.Module.__init__(self)
        self.key_layer = nn.Linear(memory_size, query_size, bias=False)

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key_layer(memory)


def build_attention(kind: str, query_size: int, memory_size: int) -> Attention:
    """``bahdanau`` | ``luong_dot`` | ``luong_general`` -> an attention module."""
    if kind == "bahdanau":
        return AdditiveAttention(query_size, memory_size, query_size)
    if kind == "luong_dot":
        return DotAttention(query_size, memory_size)
    if kind == "luong_general":
        return GeneralAttention(query_size, memory_size)
    raise ValueError(f"unknown attention {kind!r}")
