"""Token-based batches of sentences of similar length, in a reproducible order.

The order of an epoch depends only on (seed, epoch), so a resumed run rebuilds
the same batches and skips those already seen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from nmt.device import to_device
from training.data import Example


@dataclass
class Batch:
    """Padded tensors of one batch.

    src: (B, S); src_lengths: (B,); tgt_in: (B, T) BOS + target;
    tgt_out: (B, T) target + EOS; n_tokens: real target tokens (EOS included).
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    n_tokens: int

    def to(self, device: torch.device) -> Batch:
        return Batch(
            to_device(self.src, device),
            self.src_lengths,
            to_device(self.tgt_in, device),
            to_device(self.tgt_out, device),
            self.n_tokens,
        )


def make_batch(examples: list[Example], pad: int, bos: int, eos: int) -> Batch:
    """Pad a list of examples into a ``Batch``."""
    size = len(examples)
    src_len = max(len(e.src) for e in examples)
    tgt_len = max(len(e.tgt) for e in examples) + 1
    src = torch.full((size, src_len), pad, dtype=torch.long)
    tgt_in = torch.full((size, tgt_len), pad, dtype=torch.long)
    tgt_out = torch.full((size, tgt_len), pad, dtype=torch.long)
    for i, e in enumerate(examples):
        src[i, : len(e.src)] = torch.tensor(e.src)
        tgt_in[i, : len(e.tgt) + 1] = torch.tensor([bos, *e.tgt])
        tgt_out[i, : len(e.tgt) + 1] = torch.tensor([*e.tgt, eos])
    lengths = torch.tensor([len(e.src) for e in examples])
    return Batch(src, lengths, tgt_in, tgt_out, sum(len(e.tgt) + 1 for e in examples))


def token_batches(
    examples: list[Example],
    batch_tokens: int,
    max_sentences: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
) -> list[list[int]]:
    """Group example indices into batches of at most ``batch_tokens`` padded target tokens.

    Examples are shuffled, then sorted by (target, source) length inside pools of
    about 100 batches, so that batches hold similar lengths but differ between epochs.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(examples)))
    if shuffle:
        rng.shuffle(order)
    mean_len = sum(len(e.tgt) + 1 for e in examples) / len(examples)
    pool = max(1, int(100 * batch_tokens / mean_len))
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(
            order[start : start + pool],
            key=lambda i: (len(examples[i].tgt), len(examples[i].src)),
        )
        current: list[int] = []
        longest = 0
        for i in chunk:
            length = len(examples[i].tgt) + 1
            if current and (
                max(longest, length) * (len(current) + 1) > batch_tokens
                or len(current) >= max_sentences
            ):
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, length)
        if current:
            batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches
