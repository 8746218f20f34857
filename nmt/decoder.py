"""Recurrent decoder with attention and input feeding (Luong et al., 2015).

At step t the decoder reads [embedding of y_{t-1}; attentional vector of t-1],
updates an LSTM (or GRU) stack, attends over the encoder states with the top
hidden state, and mixes context and state into the attentional vector
``tanh(W [h_t; c_t])`` that both predicts y_t and is fed to step t+1.

The recurrence is written out (rather than ``nn.LSTMCell``) for training speed: in
teacher forcing the embedding part of the first layer's gates is computed for all
time steps in one matrix product, and the rest of the input and the hidden state
share one matrix product per step (``RecurrentLayer.step_weights``). A reference test
keeps the step equal to ``nn.LSTMCell`` / ``nn.GRUCell`` with the same weights.
Inference speed-ups (tables, int8) are not here: see ``nmt.inference``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from nmt.attention import build_attention
from nmt.dropout import Dropout


def lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LSTM update from gates (B, 4D) in the order input, forget, cell, output and the
    previous cell state c (B, D) -> new h (B, D), new c (B, D)."""
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(x_gates: torch.Tensor, h_gates: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """GRU update from the input's gates (B, 3D) and the hidden state's (B, 3D), both in
    the order reset, update, candidate, and the previous state h (B, D) -> new h (B, D)."""
    xr, xz, xn = x_gates.chunk(3, dim=1)
    hr, hz, hn = h_gates.chunk(3, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


class StepWeights(NamedTuple):
    """A layer's weights arranged for steps whose first P input features were projected
    ahead (see ``RecurrentLayer.step_weights``)."""

    precomputed: torch.Tensor  # G x P: applied to all steps at once
    recurrent: torch.Tensor  # G x (I - P [+ D]): applied at every step
    hidden: torch.Tensor | None  # G x D: GRU only
    bias: torch.Tensor  # G: input bias, added to the precomputed part when there is one


class RecurrentLayer(nn.Module):
    """One LSTM or GRU layer, ``gates = W_x x + W_h h + b``, applied step by step."""

    def __init__(self, cell: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = cell
        gates = (4 if cell == "lstm" else 3) * hidden_size
        bound = hidden_size**-0.5  # the uniform init of torch.nn.LSTM / GRU
        self.weight_x = nn.Parameter(torch.empty(gates, input_size).uniform_(-bound, bound))
        self.weight_h = nn.Parameter(torch.empty(gates, hidden_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(gates).uniform_(-bound, bound))
        # GRU's candidate gate needs its own hidden bias inside r * (W h + b).
        self.bias_h = (
            nn.Parameter(torch.empty(gates).uniform_(-bound, bound)) if cell == "gru" else None
        )

    def step_weights(self, precomputed: int) -> StepWeights:
        """The weights split for steps whose first ``precomputed`` input features were
        projected ahead; for LSTM the rest of the input and the hidden state share one
        matrix product.

        Done once per sequence, not at every step: slicing a parameter inside the time
        loop would make autograd build a full-size zero gradient for each slice, which
        dominated the training step.
        """
        w_pre, w_rest = self.weight_x.split(
            [precomputed, self.weight_x.size(1) - precomputed], dim=1
        )
        if self.cell == "lstm":
            return StepWeights(w_pre, torch.cat([w_rest, self.weight_h], dim=1), None, self.bias)
        return StepWeights(w_pre, w_rest, self.weight_h, self.bias)

    def forward(
        self,
        pre_gates: torch.Tensor | None,
        x: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor | None,
        w: StepWeights,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One step.

        Args:
            pre_gates: (B, G) projection of the precomputed input part (bias included) or None.
            x: (B, I) rest of the input; h, c: (B, D) previous state; w: from ``step_weights``.

        Returns:
            new h (B, D) and, for LSTM, new c (B, D).
        """
        # Gates and state stay fp32 under autocast: a bf16 cell state (8 significant
        # bits) would round away the small updates that accumulate over a sentence.
        input_bias = (pre_gates if pre_gates is not None else w.bias).float()
        if self.cell == "lstm":
            assert c is not None
            gates = F.linear(torch.cat([x, h], dim=1), w.recurrent).float() + input_bias
            return lstm_cell(gates, c)
        assert w.hidden is not None
        x_gates = F.linear(x, w.recurrent).float() + input_bias
        return gru_cell(x_gates, F.linear(h, w.hidden, self.bias_h).float(), h), None


@dataclass
class Memory:
    """What the decoder reads at every step; fixed for a batch of sentences.

    memory: (B, S, M) encoder states; keys: (B, S, K) projected keys;
    mask: (B, S) True on real source tokens.
    """

    memory: torch.Tensor
    keys: torch.Tensor
    mask: torch.Tensor

    def select(self, index: torch.Tensor) -> Memory:
        """Keep (and repeat or reorder) the rows in ``index`` (N,)."""
        return Memory(self.memory[index], self.keys[index], self.mask[index])


@dataclass
class DecoderState:
    """Recurrent state: per layer h (B, D) and, for LSTM, c (B, D); feed (B, A), the
    last attentional vector."""

    h: tuple[torch.Tensor, ...]
    c: tuple[torch.Tensor, ...] | None
    feed: torch.Tensor

    def select(self, index: torch.Tensor) -> DecoderState:
        """Keep (and repeat or reorder) the rows in ``index`` (N,)."""
        return DecoderState(
            tuple(h[index] for h in self.h),
            None if self.c is None else tuple(c[index] for c in self.c),
            self.feed[index],
        )


class Decoder(nn.Module):
    """Attention decoder with input feeding and a bridge from the encoder's final states."""

    def __init__(
        self,
        vocab_size: int,
        emb_size: int,
        hidden_size: int,
        num_layers: int,
        encoder_size: int,
        attention: str,
        *,
        dropout: float,
        pad_id: int,
        cell: str = "lstm",
        output_size: int | None = None,
    ) -> None:
        super().__init__()
        self.cell = cell
        self.emb_size = emb_size
        self.hidden_size = hidden_size
        # The attentional vector's size A: the hidden size unless the output layer
        # shares the embedding matrix, which needs A == emb_size.
        self.output_size = output_size or hidden_size
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(
            RecurrentLayer(
                cell, (emb_size + self.output_size) if i == 0 else hidden_size, hidden_size
            )
            for i in range(num_layers)
        )
        self.bridge_h = nn.Linear(encoder_size, hidden_size)
        self.bridge_c = nn.Linear(encoder_size, hidden_size) if cell == "lstm" else None
        self.attention = build_attention(attention, hidden_size, encoder_size)
        self.combine = nn.Linear(hidden_size + encoder_size, self.output_size, bias=False)

    def init_state(
        self, memory: torch.Tensor, final: list[torch.Tensor], src_mask: torch.Tensor
    ) -> tuple[Memory, DecoderState]:
        """Prepare decoding from the encoder's output.

        Args:
            memory: (B, S, M) encoder states; final: list of (L_enc, B, M) final states;
            src_mask: (B, S) True on real tokens.
        """
        n = len(self.layers)
        # With unequal depths every decoder layer starts from the top encoder layer.
        pick = list(range(n)) if final[0].size(0) == n else [-1] * n
        h = tuple(torch.tanh(self.bridge_h(final[0][i])) for i in pick)
        c = None
        if self.bridge_c is not None:
            c = tuple(torch.tanh(self.bridge_c(final[1][i])) for i in pick)
        feed = memory.new_zeros(memory.size(0), self.output_size)
        keys = self.attention.project_keys(memory)
        return Memory(memory, keys, src_mask), DecoderState(h, c, feed)

    def step_weights(self) -> list[StepWeights]:
        """Every layer's step weights; layer 0's embedding part is projected ahead."""
        return [
            cast(RecurrentLayer, layer).step_weights(self.emb_size if i == 0 else 0)
            for i, layer in enumerate(self.layers)
        ]

    def attend(self, top: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """top: (B, D) top layer's state -> attentional vector (B, A), attention (B, S)."""
        context, attn = self.attention(top, memory.keys, memory.memory, memory.mask)
        return self.dropout(torch.tanh(self.combine(torch.cat([top, context], dim=1)))), attn

    def _step(
        self,
        emb_gates: torch.Tensor,
        state: DecoderState,
        memory: Memory,
        weights: list[StepWeights],
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """emb_gates: (B, G) -> attentional vector (B, A), attention (B, S), new state."""
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor | None] = []
        for i, layer in enumerate(self.layers):
            pre, x = (emb_gates, state.feed) if i == 0 else (None, self.dropout(hs[-1]))
            h, c = layer(pre, x, state.h[i], None if state.c is None else state.c[i], weights[i])
            hs.append(h)
            cs.append(c)
        out, attn = self.attend(hs[-1], memory)
        new_c = None if state.c is None else tuple(c for c in cs if c is not None)
        return out, attn, DecoderState(tuple(hs), new_c, out)

    def forward(
        self, tgt_in: torch.Tensor, memory: Memory, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced decoding of a whole batch.

        Args:
            tgt_in: (B, T) target ids starting with BOS.

        Returns:
            outputs: (B, T, A) attentional vectors; attention: (B, T, S).
        """
        weights = self.step_weights()
        emb = self.dropout(self.embed(tgt_in))  # B x T x E
        emb_gates = F.linear(emb, weights[0].precomputed, weights[0].bias)  # B x T x G
        outputs, attentions = [], []
        # unbind once: indexing emb_gates[:, t] in the loop would give each step a
        # full-size zero gradient in the backward pass
        for step_gates in emb_gates.unbind(1):
            out, attn, state = self._step(step_gates, state, memory, weights)
            outputs.append(out)
            attentions.append(attn)
        return torch.stack(outputs, dim=1), torch.stack(attentions, dim=1)

    def step(
        self, prev: torch.Tensor, memory: Memory, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """One search step. prev: (B,) last tokens -> output (B, A), attention (B, S), state."""
        weights = self.step_weights()
        emb_gates = F.linear(self.embed(prev), weights[0].precomputed, weights[0].bias)
        return self._step(emb_gates, state, memory, weights)
