"""The training loop: steps, logging, validation and checkpoints of one run directory.

The parts it is made of live beside it: ``training.setup`` builds the run (device,
process group, data, model, optimization), ``training.validation`` scores it,
``training.state`` is what a checkpoint holds to resume exactly, and
``nmt.checkpoint`` writes and reads the file.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from nmt.checkpoint import sweep_temporary_files
from nmt.device import autocast, autocast_dtype, resolve_device
from nmt.model import Seq2Seq
from nmt.process import StopRequest
from training.batching import Batch, make_batch
from training.config import Config
from training.data import PreparedData
from training.distributed import broadcast_object, close_world, step_totals
from training.run_log import RunLog, TrainingBar
from training.setup import (
    build_model,
    build_optimization,
    place,
    resume_payload,
    run_data,
)
from training.state import Progress, RunCheckpoints, restore_training_state
from training.streaming import epoch_batches
from training.subword_sampling import sampled_step
from training.validation import Validation, Validator
from training.weight_average import run_weight_average, swapped_in

log = logging.getLogger(__name__)


@dataclass
class LogWindow:
    """Loss and target tokens since the last log line, and the training time they took
    (validation and checkpoint writes excluded)."""

    loss: float = 0.0
    tokens: int = 0
    started: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside does not count as training time."""
        began = time.monotonic()
        try:
            yield
        finally:
            self.started += time.monotonic() - began

    def tokens_per_second(self) -> float:
        return self.tokens / max(time.monotonic() - self.started, 1e-9)

    def mean_loss(self) -> float:
        return self.loss / max(self.tokens, 1)

    def reset(self) -> None:
        self.loss, self.tokens, self.started = 0.0, 0, time.monotonic()


@dataclass
class RunClock:
    """This invocation's wall time, the minutes of invocations before it, and when a
    checkpoint was last written."""

    minutes_before: float
    started: float = field(default_factory=time.monotonic)
    saved_at: float = field(default_factory=time.monotonic)
    # this invocation's minutes as all ranks agreed after the last step
    agreed_minutes: float = 0.0

    def elapsed_minutes(self) -> float:
        return (time.monotonic() - self.started) / 60

    def minutes(self) -> float:
        return self.minutes_before + self.elapsed_minutes()


@dataclass(frozen=True)
class Limits:
    """``max_steps`` and ``max_minutes`` are the run's budget, counted over all its
    invocations (a resumed run trains what is left, on the same schedule);
    ``stop_after_minutes`` ends this invocation only."""

    max_steps: int | None
    max_minutes: float | None
    stop_after_minutes: float | None
    save_every_minutes: float | None

    def out_of_time(self, clock: RunClock) -> bool:
        left = self.minutes_left(clock)
        return left is not None and left <= 0

    def minutes_left(self, clock: RunClock) -> float | None:
        """Of the run's time budget; None without one."""
        return None if self.max_minutes is None else self.max_minutes - clock.minutes()

    def invocation_over(self, clock: RunClock) -> bool:
        after = self.stop_after_minutes
        return after is not None and clock.elapsed_minutes() >= after

    def used(self, step: int, clock: RunClock) -> float:
        """The fraction of the budget spent after ``step`` steps: the larger of the steps
        and of the run's minutes (this invocation's as the ranks agreed); 0 without a
        limit."""
        used = 0.0
        if self.max_steps is not None:
            used = step / self.max_steps
        if self.max_minutes is not None:
            minutes = clock.minutes_before + clock.agreed_minutes
            used = max(used, minutes / self.max_minutes)
        return min(1.0, used)

    def spent(self, step: int, clock: RunClock) -> bool:
        """Whether the step limit is reached or the run's time is up."""
        return (self.max_steps is not None and step >= self.max_steps) or self.out_of_time(clock)

    def save_due(self, clock: RunClock) -> bool:
        every = self.save_every_minutes
        return every is not None and time.monotonic() - clock.saved_at >= every * 60


def stop_reason(stop: StopRequest, limits: Limits, out_of_time: bool, over: bool) -> str:
    """Why this rank stops once the ranks agreed to (``over``: this invocation's time)."""
    if stop.reason is not None:
        return stop.reason
    if out_of_time:
        return f"max_minutes {limits.max_minutes} reached"
    if over:
        return f"stop_after_minutes {limits.stop_after_minutes} reached (--resume goes on)"
    return "stopped: another rank was told to stop"


def log_already_spent(limits: Limits, p: Progress) -> None:
    log.warning(
        "nothing to train: the run's budget (max_steps %s, max_minutes %s) is spent at "
        "step %d after %.1f minutes; give a larger --max-steps or --max-minutes to train on",
        *(limits.max_steps, limits.max_minutes, p.step, p.minutes),
    )


def log_model(
    model: Seq2Seq, device: torch.device, amp_dtype: torch.dtype | None, data: PreparedData
) -> None:
    log.info(
        "model: %.2fM parameters, device %s, autocast %s, vocab %d/%d",
        model.num_parameters() / 1e6,
        device,
        amp_dtype or "off (fp32)",
        data.src_tokenizer.vocab_size,
        data.tgt_tokenizer.vocab_size,
    )


class Trainer:
    """Trains the model of one run directory.

    Under ``torchrun`` every process builds a Trainer: the model is wrapped in
    DistributedDataParallel, each rank trains on its own share of every step's batches,
    and rank 0 alone validates and writes the run directory. Building one changes
    nothing outside it: threads, the allocator and signal handlers are the entry
    point's (``nmt.process``); ``release_fragments`` is called at each log line.
    """

    def __init__(
        self,
        config: Config,
        resume: bool = False,
        *,
        release_fragments: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self.out = Path(config.output_dir)
        self.device, self.world = place(resolve_device(config.device))
        self.amp_dtype = autocast_dtype(self.device, config.train.precision)
        self.release_fragments = release_fragments
        payload = resume_payload(self.out) if resume else None
        data = run_data(config, self.world, payload)
        self.src_tok, self.tgt_tok = data.src_tokenizer, data.tgt_tokenizer
        self.train_set = data.train
        self.validator = Validator(data, config.train, self.device)
        self.model, self.ddp = build_model(config, data, self.device, self.world)
        self.opt = build_optimization(self.model, config.train, self.device, self.amp_dtype)
        self.log = RunLog(self.out, self.world.is_main, self.device)
        self.progress = Progress()
        if payload is not None:
            self.model.load_state_dict(payload["model"])
            self.progress = restore_training_state(
                payload["training"], self.opt, self.world, self.device, str(self.out / "last.pt")
            )
        self.average = run_weight_average(self.model, config.train.weight_average_decay, payload)
        self.checkpoints = RunCheckpoints(config, self.world, self.device, data, self.average)
        log_model(self.model, self.device, self.amp_dtype, data)

    # ------------------------------------------------------------ checkpoints
    def save(self, scores: dict[str, Any], best: bool, rolling: bool = True) -> None:
        """best.pt (when ``best``), last.pt and a rolling step checkpoint (when
        ``rolling``): see ``RunCheckpoints.save``. Called by every rank."""
        self.checkpoints.save(self.model, self.opt, self.progress, scores, best, rolling)

    def validate(self) -> Validation:
        """Score the model (with the weight average, when kept) on the validation split;
        returns it to training mode."""
        try:
            with swapped_in(self.average):
                return self.validator(self.model, self.amp_dtype)
        finally:
            self.model.train()

    # ------------------------------------------------------------------ loop
    def train_step(
        self, batches: list[Batch], step: int, budget_used: float = 0.0
    ) -> tuple[float, float, float]:
        """One optimizer step over this rank's ``batches`` (gradients accumulated, and
        averaged over ranks by DDP) with the learning rate for ``step`` and the fraction
        of the budget used; returns (summed loss, gradient norm, learning rate).

        Each batch's loss is its mean over target tokens, and the step's objective the
        mean over the batches of all ranks.
        """
        tc, opt = self.config.train, self.opt
        lr = opt.schedule.step(step, budget_used)
        opt.optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for i, batch in enumerate(batches):
            # DDP all-reduces gradients in the backward pass of the last batch only
            last = i == len(batches) - 1
            no_sync = self.ddp.no_sync() if self.ddp is not None and not last else None
            with no_sync or contextlib.nullcontext():
                with autocast(self.device, self.amp_dtype):
                    loss = self._loss(batch)
                opt.scaler.scale(loss / batch.n_tokens / len(batches)).backward()
            loss_sum += float(loss.detach())
        opt.scaler.unscale_(opt.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.clip_norm)
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
        if self.average is not None:
            self.average.update()
        return loss_sum, float(grad_norm), lr

    def _loss(self, batch: Batch) -> torch.Tensor:
        smoothing = self.config.train.label_smoothing
        if self.ddp is not None:
            return self.ddp(batch, smoothing)
        return self.model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out, smoothing)

    def run(
        self,
        max_steps: int | None = None,
        max_minutes: float | None = None,
        stop: StopRequest | None = None,
        stop_after_minutes: float | None = None,
    ) -> Progress:
        """Train until a step, time, epoch or early-stopping limit of the run (``max_*``
        override the config's), until ``stop_after_minutes`` of this invocation, or until
        ``stop`` is requested (the entry point installs its signal handlers); always
        ends with last.pt."""
        if self.world.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            for stale in sweep_temporary_files(self.out):
                log.warning("removed %s, left by a checkpoint write that was killed", stale)
            (self.out / "config.yaml").write_text(
                yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False),
                encoding="utf-8",
            )
        if self.progress.step == 0:  # from the first moment on, --resume has a start
            self.save({"saved": "start"}, best=False, rolling=False)
        tc = self.config.train
        limits = Limits(
            max_steps or tc.max_steps,
            max_minutes or tc.max_minutes,
            stop_after_minutes,
            tc.save_every_minutes,
        )
        clock = RunClock(self.progress.minutes)
        if limits.spent(self.progress.step, clock):
            log_already_spent(limits, self.progress)
            return self.progress
        self.model.train()
        try:
            reason = self._loop(limits, stop or StopRequest(), clock)
            # A run that ends on its budget validates its last weights too (a cooldown's
            # lowest rates come last); rank 0's clock decides for all ranks.
            spent = broadcast_object(self.world, limits.spent(self.progress.step, clock))
            if spent and self.progress.step % tc.valid_every != 0:
                self._validate_and_save(clock.minutes())
        finally:
            self.progress.minutes = clock.minutes()
        self.save({"stopped": reason}, best=False)
        p = self.progress
        log.log(
            logging.INFO if self.world.is_main else logging.DEBUG,
            "stopped at step %d: %s; best BLEU %.2f at step %d; run dir %s",
            *(p.step, reason, p.best_bleu, p.best_step, self.out),
        )
        return self.progress

    def close(self) -> None:
        """Release the distributed wrapper and leave the process group (no-op alone)."""
        self.ddp = None
        gc.collect()
        close_world(self.world)

    def _loop(self, limits: Limits, stop: StopRequest, clock: RunClock) -> str:
        """Epoch after epoch from where ``progress`` stands; returns why it stopped."""
        tc, p, world = self.config.train, self.progress, self.world
        window = LogWindow()
        # An optimizer step takes `accumulate` batches on each of the world's ranks.
        per_step = world.size * tc.accumulate
        bar = TrainingBar(limits.max_minutes, clock.minutes_before, enabled=world.is_main)
        try:
            while p.epoch < tc.max_epochs:
                batches, count = epoch_batches(
                    self.config, self.train_set, self.src_tok, self.tgt_tok, p.epoch
                )
                steps = None if count is None else count // per_step
                bar.start_epoch(p.epoch, steps, p.batch_in_epoch // per_step)
                remaining = itertools.islice(batches, p.batch_in_epoch, None)
                # full groups only: every rank must take the same number of steps
                while len(group := list(itertools.islice(remaining, per_step))) == per_step:
                    reason = self._step_on(group, window, limits, stop, clock, bar)
                    if reason is not None:
                        return reason
                p.epoch += 1
                p.batch_in_epoch = 0
        finally:
            bar.close()
        return "max_epochs reached"

    def _step_on(
        self,
        group: list[Any],
        window: LogWindow,
        limits: Limits,
        stop: StopRequest,
        clock: RunClock,
        bar: TrainingBar,
    ) -> str | None:
        """Train one step on this rank's share of ``group``; log, validate and save when
        due. Returns why the run stops here, or None to go on."""
        tc, p, world = self.config.train, self.progress, self.world
        tok = self.tgt_tok
        mine = group[world.rank * tc.accumulate : (world.rank + 1) * tc.accumulate]
        mine = sampled_step(mine, self.src_tok, self.tgt_tok, self.config, p.step + 1, world.rank)
        micro = [make_batch(ex, tok.pad_id, tok.bos_id, tok.eos_id).to(self.device) for ex in mine]
        loss_sum, grad_norm, lr = self.train_step(micro, p.step + 1, limits.used(p.step, clock))
        p.step += 1
        p.batch_in_epoch += len(group)
        bar.step(clock.minutes())
        out_of_time, over = limits.out_of_time(clock), limits.invocation_over(clock)
        local_stop = stop.reason is not None or out_of_time or over
        loss_sum, tokens, stopping, save_due, clock.agreed_minutes = step_totals(
            world,
            loss_sum,
            sum(b.n_tokens for b in micro),
            local_stop,
            limits.save_due(clock),
            clock.elapsed_minutes(),
            self.device,
        )
        window.loss += loss_sum
        window.tokens += tokens
        p.target_tokens += tokens
        p.minutes = clock.minutes()
        if p.step % tc.log_every == 0:
            speed, left = window.tokens_per_second(), limits.minutes_left(clock)
            self.log.training(p, window.mean_loss(), speed, grad_norm, lr, bar, left)
            if self.release_fragments is not None:
                self.release_fragments()
            window.reset()
        if p.step % tc.valid_every == 0:
            with window.paused():  # the logged tokens/s measure training alone
                early_stop = self._validate_and_save(p.minutes)
            clock.saved_at = time.monotonic()
            if early_stop:
                return "early stopping: no BLEU gain"
        elif save_due and not stopping:
            with window.paused():
                self.save({"saved": "periodic"}, best=False, rolling=False)
            clock.saved_at = time.monotonic()
        if limits.max_steps is not None and p.step >= limits.max_steps:
            return f"max_steps {limits.max_steps} reached"
        return stop_reason(stop, limits, out_of_time, over) if stopping else None

    def _validate_and_save(self, minutes: float) -> bool:
        """Validate, checkpoint, adjust the schedule; True when early stopping triggers."""
        p, tc = self.progress, self.config.train
        started = time.monotonic()
        # rank 0 validates; every rank then takes the same schedule and stopping decisions
        v = broadcast_object(self.world, self.validate() if self.world.is_main else None)
        improved = v.bleu > p.best_bleu
        if improved:
            p.best_bleu, p.best_step, p.stale_validations = v.bleu, p.step, 0
        else:
            p.stale_validations += 1
        reduced = self.opt.schedule.validated(v.bleu)
        self.log.validation(
            p, minutes, v, improved=improved, reduced=reduced, seconds=time.monotonic() - started
        )
        self.save(v.scores(p.step), best=improved)
        patience = tc.early_stopping_patience
        return patience is not None and p.stale_validations >= patience
