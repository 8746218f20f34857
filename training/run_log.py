"""What a run reports: ``curve.jsonl`` in the run directory and log lines (rank 0)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from nmt.device import peak_memory_mib
from training.state import Progress
from training.validation import Validation

log = logging.getLogger("training.trainer")


class TrainingBar:
    """The terminal's progress bar (rank 0, on a terminal only): the run's minutes
    against its budget when it has one (``max_minutes``, counted over all invocations),
    so that its estimate is the time left of the whole run; otherwise the steps of the
    current epoch."""

    def __init__(self, budget_minutes: float | None, minutes_before: float, enabled: bool) -> None:
        self.budget_seconds = None if budget_minutes is None else round(budget_minutes * 60)
        self.disable = None if enabled else True  # None: tqdm shows it on a terminal only
        self.bar: tqdm | None = None
        if self.budget_seconds is not None:
            self.bar = tqdm(
                total=self.budget_seconds,
                initial=min(round(minutes_before * 60), self.budget_seconds),
                smoothing=0,  # seconds per second: the remaining time is the budget left
                desc="training",
                unit="s",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f} of {total:.0f} s "
                "of the budget, {remaining} left{postfix}",
                dynamic_ncols=True,
                disable=self.disable,
                leave=False,
            )

    def start_epoch(self, epoch: int, steps: int | None, done: int) -> None:
        if self.budget_seconds is not None:
            return
        if self.bar is not None:
            self.bar.close()
        self.bar = tqdm(
            total=steps,
            initial=done,
            desc=f"epoch {epoch + 1}",
            unit="step",
            dynamic_ncols=True,
            disable=self.disable,
            leave=False,
        )

    def step(self, run_minutes: float) -> None:
        """One optimizer step done, ``run_minutes`` into the run."""
        assert self.bar is not None
        if self.budget_seconds is None:
            self.bar.update()
        else:
            self.bar.update(min(round(run_minutes * 60), self.budget_seconds) - self.bar.n)

    def show(self, **values: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix(values)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class RunLog:
    """Appends records to ``out/curve.jsonl`` and logs them; silent on ranks other
    than 0 (``enabled`` False). On a GPU, training records carry the allocator's peak
    memory on ``device``."""

    def __init__(self, out: Path, enabled: bool, device: torch.device) -> None:
        self.curve = out / "curve.jsonl"
        self.enabled = enabled
        self.device = device

    def _write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.curve, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def training(
        self,
        p: Progress,
        loss: float,
        speed: float,
        grad_norm: float,
        lr: float,
        bar: TrainingBar,
        minutes_left: float | None,
    ) -> None:
        """A training record: mean loss and target tokens/s since the last one; the log
        line also says how much of the time budget is left, if there is one."""
        record = {
            "kind": "train",
            "step": p.step,
            "epoch": p.epoch + 1,
            "minutes": round(p.minutes, 3),
            "loss": round(loss, 4),
            "lr": lr,
            "grad_norm": round(grad_norm, 3),
            "tgt_tokens_total": p.target_tokens,
            "tgt_tokens_per_s": round(speed, 1),
        }
        gpu = peak_memory_mib(self.device)
        if gpu is not None:
            record["gpu_peak_mib"] = round(gpu, 1)
        self._write(record)
        bar.show(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{speed:.0f}")
        left = "" if minutes_left is None else f" | {max(minutes_left, 0.0):.1f} min left"
        memory = "" if gpu is None else f" | GPU peak {gpu / 1024:.2f} GiB"
        log.info(
            "step %d epoch %d | loss %.4f | lr %.2e | grad norm %.2f | %.0f tgt tok/s%s%s",
            p.step,
            p.epoch + 1,
            loss,
            lr,
            grad_norm,
            speed,
            memory,
            left,
        )

    def validation(
        self,
        p: Progress,
        minutes: float,
        v: Validation,
        *,
        improved: bool,
        reduced: bool,
        seconds: float,
    ) -> None:
        """A validation record: scores, best so far, whether the learning rate fell."""
        self._write(
            {
                "kind": "valid",
                "step": p.step,
                "epoch": p.epoch + 1,
                "minutes": round(minutes, 3),
                "loss": round(v.loss, 4),
                "ppl": round(v.perplexity, 3),
                "bleu": round(v.bleu, 2),
                "chrf": round(v.chrf, 2),
                "best_bleu": round(p.best_bleu, 2),
                "lr_reduced": reduced,
                "seconds": round(seconds, 1),
            }
        )
        log.info(
            "validation step %d | loss %.4f | ppl %.2f | BLEU %.2f | chrF %.2f%s%s",
            p.step,
            v.loss,
            v.perplexity,
            v.bleu,
            v.chrf,
            " | new best" if improved else "",
            " | lr reduced" if reduced else "",
        )
