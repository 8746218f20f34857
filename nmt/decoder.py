"""Recurrent decoder with attention and input feeding (Luong et al., 2015).

At step t the decoder reads [embedding of y_{t-1}; attentional vector of t-1],
updates an LSTM (or GRU) stack, attends over the encoder states with the top
hidden state, and mixes context and state into the attentional vector
``tanh(W [h_t; c_t])`` that both predicts y_t and is fed to step t+1.

The recurrence is written out (rather than ``nn.LSTMCell``) so that the
embedding part of the first layer's gates is computed for all time steps in one
matrix product, and the rest of the input and the hidden state share one
matrix product per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypeAlias, cast

import torch
import torch.nn.functional as F
from torch import nn

from nmt.attention import build_attention
from nmt.dropout import Dropout

# A weight matrix, or its int8 form packed by ``nmt.quantization`` for inference.
Weight: TypeAlias = torch.Tensor | torch.ScriptObject


def linear(x: torch.Tensor, weight: Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``, or a dynamic int8 product when ``weight`` is packed (bias in fp32)."""
    if isinstance(weight, torch.Tensor):
        return F.linear(x, weight, bias)
    out = torch.ops.quantized.linear_dynamic(x.float(), weight, reduce_range=True)
    return out if bias is None else out + bias


class RecurrentLayer(nn.Module):
    """One LSTM or GRU layer, ``gates = W_x x + W_h h + b``, applied step by step.

    The weights are rearranged once per sequence by ``step_weights`` (not at every
    step): slicing a parameter inside the time loop would make autograd build a
    full-size zero gradient for each slice, which dominated the step time.
    """

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
        # Set by nmt.quantization for int8 inference: step_weights then returns these.
        self.packed: StepWeights | None = None

    def step_weights(self, precomputed: int) -> StepWeights:
        """Weights for steps whose first ``precomputed`` input features were projected ahead.

        For LSTM the rest of the input and the hidden state share one matrix product.
        """
        if self.packed is not None:
            return self.packed
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
        if self.cell == "lstm":
            assert c is not None
            gates = linear(torch.cat([x, h], dim=1), w.recurrent).float()
            gates = gates + (pre_gates if pre_gates is not None else w.bias).float()
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        assert w.hidden is not None
        x_gates = linear(x, w.recurrent).float()
        x_gates = x_gates + (pre_gates if pre_gates is not None else w.bias).float()
        xr, xz, xn = x_gates.chunk(3, dim=1)
        hr, hz, hn = linear(h, w.hidden, self.bias_h).float().chunk(3, dim=1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None


class StepWeights(NamedTuple):
    """Per-sequence arrangement of a layer's weights (see ``RecurrentLayer.step_weights``)."""

    precomputed: Weight  # G x P: applied to all steps at once
    recurrent: Weight  # G x (I - P [+ D]): applied at every step
    hidden: Weight | None  # G x D: GRU only
    bias: torch.Tensor  # G: input bias, added to the precomputed part when there is one


@dataclass
class Memory:
    """What the decoder reads at every step; fixed for a batch of sentences.

    memory: (B, S, M) encoder states; keys: (B, S, K) projected keys;
    mask: (B, S) True on real source tokens; weights: the layers' step weights.
    """

    memory: torch.Tensor
    keys: torch.Tensor
    mask: torch.Tensor
    weights: list[StepWeights]

    def select(self, index: torch.Tensor) -> Memory:
        """Keep (and repeat or reorder) the rows in ``index`` (N,)."""
        return Memory(self.memory[index], self.keys[index], self.mask[index], self.weights)


@dataclass
class DecoderState:
    """Recurrent state: per layer h (B, D) and, for LSTM, c (B, D); feed (B, D)."""

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
    ) -> None:
        super().__init__()
        self.cell = cell
        self.emb_size = emb_size
        self.hidden_size = hidden_size
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(
            RecurrentLayer(cell, (emb_size + hidden_size) if i == 0 else hidden_size, hidden_size)
            for i in range(num_layers)
        )
        self.bridge_h = nn.Linear(encoder_size, hidden_size)
        self.bridge_c = nn.Linear(encoder_size, hidden_size) if cell == "lstm" else None
        self.attention = build_attention(attention, hidden_size, encoder_size)
        self.combine = nn.Linear(hidden_size + encoder_size, hidden_size, bias=False)
        # (V, G) embedding part of layer 0's gates for every token, set by
        # ``tabulate_embedding_gates`` for inference; dropped when training resumes.
        self.gate_table: torch.Tensor | None = None

    def train(self, mode: bool = True) -> Decoder:
        if mode:
            self.gate_table = None
        return super().train(mode)

    @torch.no_grad()
    def tabulate_embedding_gates(self, max_bytes: int = 256 * 2**20) -> bool:
        """Precompute the embedding part of layer 0's gates for the whole vocabulary.

        A search step then looks its rows up instead of multiplying the embeddings
        (B x E by E x G) at every step: 9 % faster fp32 beam search for the default
        model, whose table takes 45 MB. Skipped when the table would exceed
        ``max_bytes``. Inference only: switches to eval mode. Returns whether the
        table was built.
        """
        self.eval()
        first = cast(RecurrentLayer, self.layers[0]).step_weights(self.emb_size)
        if self.embed.num_embeddings * first.bias.numel() * 4 > max_bytes:
            return False
        self.gate_table = self._embedding_gates(self.embed.weight, first).float()
        return True

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
        feed = memory.new_zeros(memory.size(0), self.hidden_size)
        keys = self.attention.project_keys(memory)
        weights = [
            cast(RecurrentLayer, layer).step_weights(self.emb_size if i == 0 else 0)
            for i, layer in enumerate(self.layers)
        ]
        return Memory(memory, keys, src_mask, weights), DecoderState(h, c, feed)

    @staticmethod
    def _embedding_gates(emb: torch.Tensor, first: StepWeights) -> torch.Tensor:
        """(..., E) embeddings -> (..., G): the embedding part of layer 0's gates, bias
        included; ``first``: layer 0's step weights."""
        return linear(emb, first.precomputed, first.bias)

    def _step(
        self, emb_gates: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """emb_gates: (B, G) -> attentional vector (B, D), attention (B, S), new state."""
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor | None] = []
        for i, layer in enumerate(self.layers):
            pre, x = (emb_gates, state.feed) if i == 0 else (None, self.dropout(hs[-1]))
            h, c = layer(
                pre, x, state.h[i], None if state.c is None else state.c[i], memory.weights[i]
            )
            hs.append(h)
            cs.append(c)
        top = hs[-1]
        context, attn = self.attention(top, memory.keys, memory.memory, memory.mask)
        out = self.dropout(torch.tanh(self.combine(torch.cat([top, context], dim=1))))
        new_c = None if state.c is None else tuple(c for c in cs if c is not None)
        return out, attn, DecoderState(tuple(hs), new_c, out)

    def forward(
        self, tgt_in: torch.Tensor, memory: Memory, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced decoding of a whole batch.

        Args:
            tgt_in: (B, T) target ids starting with BOS.

        Returns:
            outputs: (B, T, D) attentional vectors; attention: (B, T, S).
        """
        emb = self.dropout(self.embed(tgt_in))  # B x T x E
        emb_gates = self._embedding_gates(emb, memory.weights[0])  # B x T x G
        outputs, attentions = [], []
        # unbind once: indexing emb_gates[:, t] in the loop would give each step a
        # full-size zero gradient in the backward pass
        for step_gates in emb_gates.unbind(1):
            out, attn, state = self._step(step_gates, state, memory)
            outputs.append(out)
            attentions.append(attn)
        return torch.stack(outputs, dim=1), torch.stack(attentions, dim=1)

    def step(
        self, prev: torch.Tensor, memory: Memory, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """One search step. prev: (B,) last tokens -> output (B, D), attention (B, S), state."""
        if self.gate_table is not None:
            emb_gates = self.gate_table[prev]
        else:
            emb_gates = self._embedding_gates(self.embed(prev), memory.weights[0])
        return self._step(emb_gates, state, memory)
