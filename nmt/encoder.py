"""Bidirectional recurrent encoder over packed (variable-length) sequences."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.dropout import Dropout, WordDropout

RNN_TYPES: dict[str, type[nn.LSTM] | type[nn.GRU]] = {"lstm": nn.LSTM, "gru": nn.GRU}


class Encoder(nn.Module):
    """Embeddings, then a bidirectional multi-layer LSTM (or GRU).

    Output size is ``2 * hidden_size`` (forward and backward states concatenated).
    """

    def __init__(
        self,
        vocab_size: int,
        emb_size: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        pad_id: int,
        cell: str = "lstm",
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.cell = cell
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.output_size = 2 * hidden_size
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.dropout = Dropout(dropout)
        self.word_dropout = WordDropout(word_dropout)
        self.rnn = RNN_TYPES[cell](
            emb_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def forward(
        self, src: torch.Tensor, src_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode a padded batch.

        Args:
            src: (B, S) token ids, padded on the right.
            src_lengths: (B,) true lengths, all >= 1.

        Returns:
            memory: (B, S, 2H), zero on padding;
            final: per state kind (h, and c for LSTM) a (layers, B, 2H) tensor with the
            last forward and first backward state of every layer concatenated.
        """
        emb = self.dropout(self.word_dropout(self.embed(src)))  # B x S x E
        packed = pack_padded_sequence(
            emb, src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        packed_out, states = self.rnn(packed)
        memory, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src.size(1))
        memory = self.dropout(memory)  # B x S x 2H
        finals = list(states) if isinstance(states, tuple) else [states]
        batch = src.size(0)
        # (layers*2) x B x H -> layers x B x 2H: forward and backward side by side
        final = [
            s.view(self.num_layers, 2, batch, self.hidden_size)
            .permute(0, 2, 1, 3)
            .reshape(self.num_layers, batch, self.output_size)
            for s in finals
        ]
        return memory, final
