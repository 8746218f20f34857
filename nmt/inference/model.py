"""A trained model prepared for decoding: same search interface, faster step.

The prepared step computes what ``Decoder.step`` computes (a reference test keeps
them equal) with everything that does not change between steps done once: the
embedding part of the first layer's gates looked up in a table instead of multiplied
at every step, each layer's weights arranged (and optionally packed as int8) for its
step products. Encoder, attention, combination and output layer are the trained
model's own modules (quantized by ``prepare_for_inference`` for int8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nmt.decoder import DecoderState, Memory, gru_cell, lstm_cell
from nmt.inference.products import Product
from nmt.model import Seq2Seq


@dataclass(frozen=True)
class PreparedLayer:
    """One recurrent layer's step with its products prepared.

    LSTM: ``recurrent`` maps [x; h] to the gates; GRU: ``recurrent`` maps x and
    ``hidden`` maps h (with GRU's hidden bias). ``bias`` is the input bias, added here
    only when the caller passes no precomputed gates (layers above the first).
    """

    cell: str
    recurrent: Product
    hidden: Product | None
    bias: torch.Tensor

    def __call__(
        self,
        pre_gates: torch.Tensor | None,
        x: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """pre_gates: (B, G) or None; x: (B, I); h, c: (B, D) -> new h, new c (LSTM)."""
        input_bias = (pre_gates if pre_gates is not None else self.bias).float()
        if self.cell == "lstm":
            assert c is not None
            return lstm_cell(self.recurrent(torch.cat([x, h], dim=1)).float() + input_bias, c)
        assert self.hidden is not None
        x_gates = self.recurrent(x).float() + input_bias
        return gru_cell(x_gates, self.hidden(h).float(), h), None


class InferenceModel(nn.Module):
    """``encode`` and ``step`` as ``Seq2Seq`` has them, for search; eval mode only.

    Args:
        model: the trained model (its modules are used as they are).
        layers: the decoder's layers, prepared.
        embedding_gates: layer 0's embedding part of the gates, bias included, either
            as a (V, G) table or as a product applied to the embeddings at each step.
        amp_dtype: the autocast dtype to decode under (None: fp32).
    """

    def __init__(
        self,
        model: Seq2Seq,
        layers: list[PreparedLayer],
        embedding_gates: torch.Tensor | Product,
        amp_dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.layers = layers
        self.embedding_gates = embedding_gates
        self.amp_dtype = amp_dtype

    @property
    def pad_id(self) -> int:
        return self.model.pad_id

    @property
    def device(self) -> torch.device:
        return self.model.decoder.embed.weight.device

    def train(self, mode: bool = True) -> InferenceModel:
        if mode:
            raise RuntimeError("an InferenceModel decodes only; train the Seq2Seq it came from")
        return super().train(False)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Memory, DecoderState]:
        """src: (B, S) ids, src_lengths: (B,) -> memory and initial decoder state."""
        return self.model.encode(src, src_lengths)

    def step(
        self, prev: torch.Tensor, memory: Memory, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """prev: (B,) -> log-probabilities (B, V), attention (B, S), new state."""
        if isinstance(self.embedding_gates, torch.Tensor):
            emb_gates = self.embedding_gates[prev]
        else:
            emb_gates = self.embedding_gates(self.model.decoder.embed(prev))
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor | None] = []
        for i, layer in enumerate(self.layers):
            pre, x = (emb_gates, state.feed) if i == 0 else (None, hs[-1])
            h, c = layer(pre, x, state.h[i], None if state.c is None else state.c[i])
            hs.append(h)
            cs.append(c)
        out, attn = self.model.decoder.attend(hs[-1], memory)
        new_c = None if state.c is None else tuple(c for c in cs if c is not None)
        return self.model.log_probs(out), attn, DecoderState(tuple(hs), new_c, out)
