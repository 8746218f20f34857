"""Learning rate: linear warm-up, then decay by a factor when validation BLEU stalls."""

from __future__ import annotations

from typing import Any

import torch


class WarmupPlateau:
    """lr = base * min(1, step / warmup) * scale; ``scale`` shrinks on a BLEU plateau."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        base_lr: float,
        warmup_steps: int,
        factor: float,
        patience: int,
        min_lr: float,
    ) -> None:
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps
        self.factor = factor
        self.patience = patience
        self.min_lr = min_lr
        self.scale = 1.0
        self.best = float("-inf")
        self.bad_validations = 0

    def lr_at(self, step: int) -> float:
        warm = 1.0 if self.warmup_steps == 0 else min(1.0, step / self.warmup_steps)
        return max(self.base_lr * warm * self.scale, self.min_lr if warm == 1.0 else 0.0)

    def step(self, step: int) -> float:
        """Set the learning rate for optimizer step number ``step`` (1-based)."""
        lr = self.lr_at(step)
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
