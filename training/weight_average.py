"""An exponential moving average of the model's parameters, for validation and best.pt.

Small-data recurrent models jump by about a BLEU point between neighbouring
validations; the average of the recent weights (Polyak averaging, as Marian's
``--exponential-smoothing`` and fairseq's EMA keep it) smooths those jumps away at the
cost of one in-place update per optimizer step. Training itself goes on with the raw
weights: the average is swapped in only to validate and to write best.pt, and it
travels in last.pt so that a resumed run continues it exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """``average = decay_t * average + (1 - decay_t) * weights`` after every step.

    ``decay_t = min(decay, (1 + t) / (10 + t))`` at update t: the first updates move
    the average quickly away from the random initialization (the warm-up of
    TensorFlow's ``ExponentialMovingAverage(num_updates=...)``).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.average = [p.detach().clone().float() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights (call after the optimizer step)."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        weights = [p.detach().float() for p in self.params]
        torch._foreach_lerp_(self.average, weights, 1.0 - decay)

    @contextmanager
    @torch.no_grad()
    def swapped_in(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own after it."""
        saved = [p.detach().clone() for p in self.params]
        for param, average in zip(self.params, self.average, strict=True):
            param.copy_(average)
        try:
            yield
        finally:
            for param, own in zip(self.params, saved, strict=True):
                param.copy_(own)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the average saved by ``state_dict`` (same model, same decay)."""
        if len(state["average"]) != len(self.average):
            raise ValueError("the saved weight average belongs to another model")
        self.updates = int(state["updates"])
        for average, saved in zip(self.average, state["average"], strict=True):
            average.copy_(saved)


def run_weight_average(
    model: nn.Module, decay: float | None, resumed: dict[str, Any] | None
) -> WeightAverage | None:
    """A run's weight average: None when ``decay`` is None; else continued from the
    ``resumed`` checkpoint's, or started from the model's current weights."""
    if decay is None:
        return None
    average = WeightAverage(model, decay)
    saved = None if resumed is None else resumed["training"].get("weight_average")
    if saved is not None:
        average.load_state_dict(saved)
    return average


def swapped_in(average: WeightAverage | None) -> AbstractContextManager[None]:
    """``average.swapped_in()``, or a block that changes nothing when there is none."""
    return nullcontext() if average is None else average.swapped_in()
