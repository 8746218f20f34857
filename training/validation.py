"""Validation: teacher-forced loss and perplexity, then greedy BLEU and chrF."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sacrebleu
import torch

from nmt.device import autocast
from nmt.inference import prepare_for_inference
from nmt.model import Seq2Seq
from nmt.search import SearchConfig
from nmt.translator import decode_ids
from training.batching import make_batch, token_batches
from training.config import TrainConfig
from training.data import PreparedData


@dataclass
class Validation:
    loss: float
    perplexity: float
    bleu: float
    chrf: float
    signature: str

    def scores(self, step: int) -> dict[str, Any]:
        """The ``scores`` entry of a checkpoint."""
        return {
            "valid_bleu": self.bleu,
            "valid_chrf": self.chrf,
            "valid_loss": self.loss,
            "valid_ppl": self.perplexity,
            "bleu_signature": self.signature,
            "step": step,
        }


class Validator:
    """The validation split, batched once (it never changes), and how it is scored."""

    def __init__(self, data: PreparedData, tc: TrainConfig, device: torch.device) -> None:
        tgt = data.tgt_tokenizer
        self.tokenizer = tgt
        self.sources = [e.src for e in data.valid]
        self.refs = data.valid_refs
        self.batch_size = tc.valid_batch_size
        self.batches = [
            make_batch([data.valid[i] for i in indices], tgt.pad_id, tgt.bos_id, tgt.eos_id).to(
                device
            )
            for indices in token_batches(
                data.valid, tc.batch_tokens, tc.max_sentences, seed=0, epoch=0, shuffle=False
            )
        ]

    @torch.no_grad()
    def __call__(self, model: Seq2Seq, amp_dtype: torch.dtype | None) -> Validation:
        """Score ``model``; leaves it in eval mode (the caller returns it to training)."""
        model.eval()
        total, tokens = 0.0, 0
        for batch in self.batches:
            with autocast(model.device, amp_dtype):
                nll = model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out)
            total += float(nll)
            tokens += batch.n_tokens
        tok = self.tokenizer
        greedy = SearchConfig(beam_size=1, return_attention=False)
        prepared = prepare_for_inference(model)
        hyps = decode_ids(prepared, self.sources, tok.bos_id, tok.eos_id, greedy, self.batch_size)
        texts = tok.decode([h[0].tokens for h in hyps])
        bleu = sacrebleu.metrics.BLEU()
        bleu_score = bleu.corpus_score(texts, [self.refs])
        chrf = sacrebleu.metrics.CHRF().corpus_score(texts, [self.refs])
        loss = total / max(tokens, 1)
        return Validation(
            loss, math.exp(min(loss, 50)), bleu_score.score, chrf.score, str(bleu.get_signature())
        )
