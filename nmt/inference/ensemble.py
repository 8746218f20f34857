"""Several trained models decoding as one: an ensemble for search.

Each member keeps its own memory and state; at every step the ensemble's
next-token distribution is the mean of the members' probabilities (its log is what
search sees), as OpenNMT-py and fairseq ensemble, and its attention the mean of theirs.
The members share one vocabulary (checkpoints of one run, or runs with the same
tokenizers): ``Translator.from_checkpoints`` checks that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from nmt.search import SearchModel


class Members(tuple):
    """One opaque memory or state per member; ``select`` keeps the same rows in each."""

    def select(self, index: torch.Tensor) -> Members:
        return Members(part.select(index) for part in self)


class Ensemble:
    """The search interface over ``members`` (at least two, on one device)."""

    def __init__(self, members: Sequence[SearchModel]) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two models")
        if len({m.pad_id for m in members}) > 1 or len({m.device for m in members}) > 1:
            raise ValueError("ensemble members must share the vocabulary and the device")
        self.members = list(members)
        self._log_count = math.log(len(members))

    @property
    def pad_id(self) -> int:
        return self.members[0].pad_id

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Members, Members]:
        """src: (B, S) ids, src_lengths: (B,) -> each member's memory and initial state."""
        encoded = [m.encode(src, src_lengths) for m in self.members]
        return Members(e[0] for e in encoded), Members(e[1] for e in encoded)

    def step(
        self, prev: torch.Tensor, memory: Any, state: Any
    ) -> tuple[torch.Tensor, torch.Tensor, Members]:
        """prev: (B,) -> log of the mean probability (B, V), mean attention (B, S), states."""
        outputs = [
            m.step(prev, mem, st) for m, mem, st in zip(self.members, memory, state, strict=True)
        ]
        log_probs = torch.stack([o[0].float() for o in outputs])  # (M, B, V)
        attention = torch.stack([o[1].float() for o in outputs])  # (M, B, S)
        mean = torch.logsumexp(log_probs, dim=0) - self._log_count
        return mean, attention.mean(dim=0), Members(o[2] for o in outputs)
