"""Subword regularization: each training step sees its pairs segmented anew.

Kudo (2018): sampling one of the many segmentations of a sentence (instead of always
the most likely one) at every step acts as data augmentation and makes the model
robust to segmentation noise, worth about a BLEU point on small corpora. Batches are
still formed from the deterministic segmentation's lengths; only the ids of each
step's pairs are drawn again. Validation and decoding keep the deterministic
segmentation.
"""

from __future__ import annotations

import sentencepiece as spm

from nmt.tokenizer import Tokenizer
from training.config import Config
from training.data import Example


def sampled_examples(
    examples: list[Example],
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    alpha: float,
    seed: int,
    max_lengths: tuple[int, int],
) -> list[Example]:
    """``examples`` with both sides segmented by sampling; the same for the same seed,
    so that a resumed run draws what the uninterrupted one drew. A side whose sample
    is longer than its limit in ``max_lengths`` keeps its deterministic ids."""
    # SentencePiece's generator is global to the process; this is its only user here
    spm.set_random_generator_seed(seed)
    max_src, max_tgt = max_lengths
    sampled = []
    for example in examples:
        src = src_tok.sample(example.src_text, alpha)
        tgt = tgt_tok.sample(example.tgt_text, alpha)
        sampled.append(
            Example(
                src if 0 < len(src) <= max_src else example.src,
                tgt if 0 < len(tgt) <= max_tgt else example.tgt,
                example.src_text,
                example.tgt_text,
            )
        )
    return sampled


def sampled_step(
    batches: list[list[Example]],
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    config: Config,
    step: int,
    rank: int,
) -> list[list[Example]]:
    """One rank's batches of optimizer step ``step``, segmented by sampling with
    ``tokenizer.sampling_alpha`` (as they are when it is None): a seed for each (step,
    rank, batch), so that a resumed run draws what the uninterrupted one drew."""
    alpha, data = config.tokenizer.sampling_alpha, config.data
    if alpha is None:
        return batches
    base = config.train.seed * 1_000_003 + step * 1_009 + rank * 101
    return [
        sampled_examples(
            examples,
            src_tok,
            tgt_tok,
            alpha,
            seed=(base + i) % 2**32,
            max_lengths=(data.max_src_len, data.max_tgt_len),
        )
        for i, examples in enumerate(batches)
    ]
