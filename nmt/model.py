"""The sequence-to-sequence model and its typed configuration."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from nmt.decoder import Decoder, DecoderState, Memory
from nmt.device import loss_chunk_rows
from nmt.encoder import Encoder
from nmt.output_loss import output_loss


class ModelConfig(BaseModel):
    """Architecture hyper-parameters; stored in every checkpoint."""

    model_config = ConfigDict(extra="forbid")

    cell: Literal["lstm", "gru"] = "lstm"
    attention: Literal["bahdanau", "luong_dot", "luong_general"] = "luong_general"
    emb_size: int = Field(256, ge=1)
    encoder_hidden: int = Field(256, ge=1, description="units per direction")
    encoder_layers: int = Field(1, ge=1)
    decoder_hidden: int = Field(512, ge=1)
    decoder_layers: int = Field(1, ge=1)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    source_word_dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="in training, zero a whole source token's embedding with this "
        "probability (Sennrich et al., 2016)",
    )
    tie_embeddings: bool = Field(
        False,
        description="share the target embedding matrix with the output layer; the "
        "attentional vector then has emb_size units (Press and Wolf, 2017)",
    )
    init_range: float = Field(
        0.1,
        ge=0.0,
        description="draw every parameter from U(-r, r) as OpenNMT-py does; 0 keeps "
        "PyTorch's per-layer defaults",
    )

    @model_validator(mode="after")
    def _check_sizes(self) -> ModelConfig:
        if self.attention == "luong_dot" and 2 * self.encoder_hidden != self.decoder_hidden:
            raise ValueError(
                "attention 'luong_dot' needs decoder_hidden == 2 * encoder_hidden "
                f"({self.decoder_hidden} != {2 * self.encoder_hidden})"
            )
        return self


class Seq2Seq(nn.Module):
    """Bidirectional RNN encoder + attention RNN decoder + output layer.

    The search interface is ``encode`` (source -> memory and initial state) and
    ``step`` (last tokens and state -> log-probabilities, attention, new state).
    """

    def __init__(self, config: ModelConfig, src_vocab: int, tgt_vocab: int, pad_id: int) -> None:
        super().__init__()
        self.config = config
        self.pad_id = pad_id
        self.encoder = Encoder(
            src_vocab,
            config.emb_size,
            config.encoder_hidden,
            config.encoder_layers,
            config.dropout,
            pad_id,
            config.cell,
            word_dropout=config.source_word_dropout,
        )
        self.decoder = Decoder(
            tgt_vocab,
            config.emb_size,
            config.decoder_hidden,
            config.decoder_layers,
            self.encoder.output_size,
            config.attention,
            dropout=config.dropout,
            pad_id=pad_id,
            cell=config.cell,
            output_size=config.emb_size if config.tie_embeddings else config.decoder_hidden,
        )
        self.generator = nn.Linear(self.decoder.output_size, tgt_vocab)
        if config.tie_embeddings:
            self.generator.weight = self.decoder.embed.weight
        if config.init_range > 0:
            # PyTorch's N(0, 1) embeddings are far larger than the U(+-1/sqrt(H)) recurrent
            # weights; one small uniform range for all learns faster on Multi30k.
            for param in self.parameters():
                nn.init.uniform_(param, -config.init_range, config.init_range)
            with torch.no_grad():
                self.encoder.embed.weight[pad_id].zero_()
                self.decoder.embed.weight[pad_id].zero_()

    @property
    def device(self) -> torch.device:
        return self.decoder.embed.weight.device

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Memory, DecoderState]:
        """src: (B, S) ids, src_lengths: (B,) -> memory and initial decoder state."""
        memory, final = self.encoder(src, src_lengths)
        return self.decoder.init_state(memory, final, src != self.pad_id)

    def step(
        self, prev: torch.Tensor, memory: Memory, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """prev: (B,) -> log-probabilities (B, V), attention (B, S), new state."""
        out, attn, state = self.decoder.step(prev, memory, state)
        return self.log_probs(out), attn, state

    def log_probs(self, out: torch.Tensor) -> torch.Tensor:
        """Attentional vectors (B, A) -> log-probabilities of the next token (B, V), fp32."""
        return F.log_softmax(self.generator(out).float(), dim=-1)

    def forward(
        self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: (B, S), (B,), (B, T) -> outputs (B, T, A), attention (B, T, S).

        Outputs are the attentional vectors before the output layer, so that the
        caller can apply it to the non-padding positions only.
        """
        memory, state = self.encode(src, src_lengths)
        return self.decoder(tgt_in, memory, state)

    def loss(
        self,
        src: torch.Tensor,
        src_lengths: torch.Tensor,
        tgt_in: torch.Tensor,
        tgt_out: torch.Tensor,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        """Cross-entropy summed over the real target tokens (label-smoothed if asked),
        equal to ``F.cross_entropy`` over ``generator``'s logits but computed a chunk of
        tokens at a time (``nmt.output_loss``: the output layer is the largest part of a
        training step on a CPU).

        Args:
            tgt_in: (B, T) BOS + target; tgt_out: (B, T) target + EOS, padded with pad_id.
        """
        outputs, _ = self(src, src_lengths, tgt_in)
        real = tgt_out != self.pad_id  # B x T
        vocab = self.generator.out_features
        return output_loss(  # the output layer on the N real target tokens only
            outputs[real],  # N x D
            self.generator.weight,
            self.generator.bias,
            tgt_out[real],
            label_smoothing,
            rows=loss_chunk_rows(self.device, vocab),
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
