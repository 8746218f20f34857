"""Learning rate: linear warm-up, a constant rate that halves when validation BLEU
stalls, and optionally a linear cooldown over the end of the run's budget."""

from __future__ import annotations

from typing import Any

import torch


class WarmupPlateau:
    """lr = base * warm(step) * scale * cooldown(budget used), at least ``min_lr`` after
    the warm-up.

    ``warm`` rises linearly over ``warmup_steps``; ``scale`` shrinks by ``factor`` after
    more than ``patience`` validations without a BLEU gain; ``cooldown`` falls linearly
    from 1 to 0 over the last ``cooldown`` fraction of the budget (warm-up, stable,
    decay: Hu et al. 2024; Hägele et al. 2024), where the budget is whatever limit the
    run has (``max_steps`` or ``max_minutes``): the caller passes how much of it is used.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        base_lr: float,
        warmup_steps: int,
        factor: float,
        patience: int,
        min_lr: float,
        cooldown: float = 0.0,
    ) -> None:
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps
        self.factor = factor
        self.patience = patience
        self.min_lr = min_lr
        self.cooldown = cooldown
        self.scale = 1.0
        self.best = float("-inf")
        self.bad_validations = 0

    def lr_at(self, step: int, budget_used: float = 0.0) -> float:
        """``budget_used``: the fraction of the run's budget spent, 0 to 1."""
        warm = 1.0 if self.warmup_steps == 0 else min(1.0, step / self.warmup_steps)
        cool = 1.0
        if self.cooldown > 0:
            cool = min(1.0, max(0.0, (1.0 - budget_used) / self.cooldown))
        return max(self.base_lr * warm * self.scale * cool, self.min_lr if warm == 1.0 else 0.0)

    def step(self, step: int, budget_used: float = 0.0) -> float:
        """Set the learning rate for optimizer step number ``step`` (1-based)."""
        lr = self.lr_at(step, budget_used)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def validated(self, score: float) -> bool:
        """Record a validation score; returns True when the rate was reduced."""
        if score > self.best:
            self.best, self.bad_validations = score, 0
            return False
        self.bad_validations += 1
        if self.bad_validations > self.patience:
            self.scale *= self.factor
            self.bad_validations = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad_validations = int(state["bad_validations"])
