"""The training loop: batches, optimization, validation, checkpoints and exact resume."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import logging
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sacrebleu
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from nmt.checkpoint import (
    read_checkpoint,
    save_checkpoint,
    sweep_temporary_files,
    tokenizer_entries,
)
from nmt.device import (
    FragmentReleaser,
    autocast,
    autocast_dtype,
    keep_freed_memory,
    resolve_device,
)
from nmt.inference import prepare_for_inference
from nmt.model import Seq2Seq
from nmt.search import SearchConfig
from nmt.translator import decode_ids
from training.batching import Batch, make_batch, token_batches
from training.config import Config
from training.data import PreparedData, prepare_data
from training.distributed import (
    broadcast_object,
    close_world,
    gather_objects,
    init_world,
    step_totals,
)
from training.schedule import WarmupPlateau
from training.streaming import epoch_batches

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint so that a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already trained on
    best_bleu: float = -1.0
    best_step: int = 0
    stale_validations: int = 0  # for early stopping
    minutes: float = 0.0  # training wall time over all invocations
    target_tokens: int = 0  # real target tokens trained on (EOS included)


@dataclass
class Validation:
    loss: float
    perplexity: float
    bleu: float
    chrf: float
    signature: str


class _TrainingLoss(nn.Module):
    """The model's training loss as ``forward``, the method DistributedDataParallel hooks."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, label_smoothing: float) -> torch.Tensor:
        return self.model.loss(
            batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out, label_smoothing
        )


class Trainer:
    """Owns the model, optimizer, schedule and data of one run directory.

    Under ``torchrun`` every process builds a Trainer: the model is wrapped in
    DistributedDataParallel, each rank trains on its own share of every step's batches,
    and rank 0 alone validates and writes the run directory.
    """

    def __init__(self, config: Config, resume: bool = False) -> None:
        self.config = config
        self.out = Path(config.output_dir)
        self.device = resolve_device(config.device)
        self.world = init_world(self.device)
        if self.device.type == "cuda" and self.world.distributed:
            self.device = torch.device("cuda", self.world.local_rank)  # one GPU per process
            torch.cuda.set_device(self.device)
        self.amp_dtype = autocast_dtype(self.device, config.train.precision)
        tc = config.train
        if tc.num_threads:
            torch.set_num_threads(tc.num_threads)
        self.release_fragments: FragmentReleaser | None = None
        if self.device.type == "cpu" and keep_freed_memory():
            self.release_fragments = FragmentReleaser()
        resume_payload = self._resume_payload() if resume else None
        data = self._prepare_data(resume_payload)
        self.src_tok, self.tgt_tok = data.src_tokenizer, data.tgt_tokenizer
        self.train_set = data.train
        self.valid_refs = data.valid_refs
        # Validation data never changes: batch it once.
        self.valid_sources = [e.src for e in data.valid]
        self.valid_batches = [
            make_batch(
                [data.valid[i] for i in indices],
                self.tgt_tok.pad_id,
                self.tgt_tok.bos_id,
                self.tgt_tok.eos_id,
            ).to(self.device)
            for indices in token_batches(
                data.valid, tc.batch_tokens, tc.max_sentences, seed=0, epoch=0, shuffle=False
            )
        ]
        torch.manual_seed(tc.seed)
        self.model = Seq2Seq(
            config.model, self.src_tok.vocab_size, self.tgt_tok.vocab_size, self.tgt_tok.pad_id
        ).to(self.device)
        self.ddp: DistributedDataParallel | None = None
        if self.world.distributed:
            # Same seed, same initial weights everywhere (DDP also broadcasts rank 0's);
            # dropout then draws differently on every rank.
            torch.manual_seed(tc.seed + self.world.rank)
            self.ddp = DistributedDataParallel(_TrainingLoss(self.model))
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=tc.learning_rate,
            betas=tc.adam_betas,
            weight_decay=tc.weight_decay,
            # One kernel over all parameters: about 3x faster steps than the default.
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.schedule = WarmupPlateau(
            self.optimizer,
            tc.learning_rate,
            tc.warmup_steps,
            tc.plateau_factor,
            tc.plateau_patience,
            tc.min_learning_rate,
        )
        # fp16 needs loss scaling; bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.progress = Progress()
        if resume_payload is not None:
            self._restore(resume_payload)
        log.info(
            "model: %.2fM parameters, device %s, autocast %s, vocab %d/%d",
            self.model.num_parameters() / 1e6,
            self.device,
            self.amp_dtype or "off (fp32)",
            self.src_tok.vocab_size,
            self.tgt_tok.vocab_size,
        )

    # ----------------------------------------------------------------- state
    def _resume_payload(self) -> dict[str, Any]:
        last = self.out / "last.pt"
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no {last} to resume from (start without --resume)")
        payload = read_checkpoint(last)
        if "training" not in payload:
            raise ValueError(f"{last} holds no training state to resume from")
        log.info("resuming from %s (step %d)", last, payload["step"])
        return payload

    def _restore(self, payload: dict[str, Any]) -> None:
        state = payload["training"]
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(**state["progress"])
        rngs = state.get("rng_per_rank") or [state["rng"]]
        if len(rngs) != self.world.size:
            raise ValueError(
                f"{self.out / 'last.pt'} was written by {len(rngs)} process(es); resume it "
                f"with as many, not {self.world.size}"
            )
        torch.set_rng_state(rngs[self.world.rank])
        cuda_rngs = state.get("cuda_rng_per_rank") or [state.get("cuda_rng")]
        if self.device.type == "cuda" and cuda_rngs[self.world.rank] is not None:
            torch.cuda.set_rng_state(cuda_rngs[self.world.rank], self.device)

    def _fingerprint(self) -> str:
        """A hash of the exact parameter values: equal on all ranks unless they diverged."""
        digest = hashlib.sha256()
        for param in self.model.parameters():
            digest.update(param.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def _prepare_data(self, resume_payload: dict[str, Any] | None) -> PreparedData:
        """Read and tokenize the data; in a distributed run, rank 0 trains the
        SentencePiece models and the other ranks use them (never train their own)."""
        if not self.world.distributed or resume_payload is not None:
            return prepare_data(self.config, resume_payload)
        data = prepare_data(self.config) if self.world.is_main else None
        entries = broadcast_object(
            self.world,
            None if data is None else tokenizer_entries(data.src_tokenizer, data.tgt_tokenizer),
        )
        return data if data is not None else prepare_data(self.config, entries)

    def _payload(
        self, scores: dict[str, Any], training: bool, rngs: list[Any] | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model_config": self.config.model.model_dump(mode="json"),
            "config": self.config.model_dump(mode="json"),
            "src_lang": self.config.data.src_lang,
            "tgt_lang": self.config.data.tgt_lang,
            **tokenizer_entries(self.src_tok, self.tgt_tok),
            "model": self.model.state_dict(),
            "step": self.progress.step,
            "scores": scores,
        }
        if training:
            payload["training"] = {
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict(),
                "progress": asdict(self.progress),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            }
            if rngs is not None and len(rngs) > 1:
                payload["training"]["rng_per_rank"] = [cpu for cpu, _ in rngs]
                payload["training"]["cuda_rng_per_rank"] = [cuda for _, cuda in rngs]
        return payload

    def save(self, scores: dict[str, Any], best: bool, rolling: bool = True) -> None:
        """Write best.pt (when ``best``), then last.pt (with training state), then a
        rolling step checkpoint (when ``rolling``).

        best.pt goes first: a kill between the two writes then leaves a last.pt that
        does not yet know of the new best, and the resumed run validates again,
        rather than a last.pt that believes a best.pt was written that never was.
        Called by every rank (the RNG states of all ranks are gathered); rank 0 writes.
        """
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        rngs = gather_objects(self.world, (torch.get_rng_state(), cuda_rng))
        fingerprints = (
            gather_objects(self.world, self._fingerprint()) if self.world.distributed else []
        )
        if not self.world.is_main:
            return
        if len(set(fingerprints)) > 1:
            log.error("replicas have diverged: parameter fingerprints %s", fingerprints)
        payload = self._payload(scores, training=True, rngs=rngs)
        if fingerprints:
            payload["training"]["replica_fingerprints"] = fingerprints
        if best:
            save_checkpoint(self._payload(scores, training=False), self.out / "best.pt")
        save_checkpoint(payload, self.out / "last.pt")
        keep = self.config.train.keep_last
        if rolling and keep > 0:
            save_checkpoint(payload, self.out / f"step_{self.progress.step}.pt")
            steps = sorted(self.out.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
            for old in steps[:-keep]:
                old.unlink(missing_ok=True)

    # ------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> Validation:
        """Teacher-forced loss and perplexity, then greedy BLEU and chrF with sacreBLEU."""
        self.model.eval()
        total, tokens = 0.0, 0
        for batch in self.valid_batches:
            with autocast(self.device, self.amp_dtype):
                nll = self.model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out)
            total += float(nll)
            tokens += batch.n_tokens
        hyps = decode_ids(
            prepare_for_inference(self.model),
            self.valid_sources,
            self.tgt_tok.bos_id,
            self.tgt_tok.eos_id,
            SearchConfig(beam_size=1, return_attention=False),
            self.config.train.valid_batch_size,
        )
        texts = self.tgt_tok.decode([h[0].tokens for h in hyps])
        bleu = sacrebleu.metrics.BLEU()
        bleu_score = bleu.corpus_score(texts, [self.valid_refs])
        chrf = sacrebleu.metrics.CHRF().corpus_score(texts, [self.valid_refs])
        self.model.train()
        loss = total / max(tokens, 1)
        return Validation(
            loss, math.exp(min(loss, 50)), bleu_score.score, chrf.score, str(bleu.get_signature())
        )

    # --------------------------------------------------------------- logging
    def _write_curve(self, record: dict[str, Any]) -> None:
        if not self.world.is_main:
            return
        with open(self.out / "curve.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ loop
    def train_step(self, batches: list[Batch], step: int) -> tuple[float, float, float]:
        """One optimizer step over this rank's ``batches`` (gradients accumulated, and
        averaged over ranks by DDP); returns (summed loss, gradient norm, learning rate).

        Each batch's loss is its mean over target tokens, and the step's objective the
        mean over the batches of all ranks.
        """
        tc = self.config.train
        lr = self.schedule.step(step)
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for i, batch in enumerate(batches):
            # DDP all-reduces gradients in the backward pass of the last batch only
            last = i == len(batches) - 1
            no_sync = self.ddp.no_sync() if self.ddp is not None and not last else None
            with no_sync or contextlib.nullcontext():
                with autocast(self.device, self.amp_dtype):
                    if self.ddp is not None:
                        loss = self.ddp(batch, tc.label_smoothing)
                    else:
                        loss = self.model.loss(
                            batch.src,
                            batch.src_lengths,
                            batch.tgt_in,
                            batch.tgt_out,
                            tc.label_smoothing,
                        )
                self.scaler.scale(loss / batch.n_tokens / len(batches)).backward()
            loss_sum += float(loss.detach())
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss_sum, float(grad_norm), lr

    def run(self, max_steps: int | None = None, max_minutes: float | None = None) -> Progress:
        """Train until a step, time, epoch or early-stopping limit; always ends with last.pt."""
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
        max_steps = max_steps or tc.max_steps
        max_minutes = max_minutes or tc.max_minutes
        start, minutes_before = time.monotonic(), self.progress.minutes
        self.model.train()
        # A signal only sets a flag: the step under way finishes, so the checkpoint
        # written afterwards is consistent and resuming continues exactly.
        self._stop_signal: str | None = None
        handlers = {
            s: signal.signal(s, self._request_stop) for s in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            reason = self._loop(max_steps, max_minutes, start, minutes_before)
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            self.progress.minutes = minutes_before + (time.monotonic() - start) / 60
        self.save({"stopped": reason}, best=False)
        log.log(
            logging.INFO if self.world.is_main else logging.DEBUG,
            "stopped at step %d: %s; best BLEU %.2f at step %d; run dir %s",
            self.progress.step,
            reason,
            self.progress.best_bleu,
            self.progress.best_step,
            self.out,
        )
        return self.progress

    def close(self) -> None:
        """Release the distributed wrapper and leave the process group (no-op alone)."""
        self.ddp = None
        gc.collect()
        close_world(self.world)

    def _request_stop(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self._stop_signal is not None:
            # a second signal: stop now; last.pt is still the one last written whole
            log.warning("%s received again: stopping at once (last.pt as last saved)", name)
            raise KeyboardInterrupt(name)
        self._stop_signal = name
        log.warning("%s received: stopping after this step (again: at once)", name)

    def _loop(
        self, max_steps: int | None, max_minutes: float | None, start: float, minutes_before: float
    ) -> str:
        tc, p, world = self.config.train, self.progress, self.world
        pad, bos, eos = self.tgt_tok.pad_id, self.tgt_tok.bos_id, self.tgt_tok.eos_id
        window = {"loss": 0.0, "tokens": 0, "time": time.monotonic()}
        saved_at = time.monotonic()
        # An optimizer step takes `accumulate` batches on each of the world's ranks.
        per_step = world.size * tc.accumulate
        mine = slice(world.rank * tc.accumulate, (world.rank + 1) * tc.accumulate)
        while p.epoch < tc.max_epochs:
            batches, count = epoch_batches(
                self.config, self.train_set, self.src_tok, self.tgt_tok, p.epoch
            )
            bar = tqdm(
                total=None if count is None else count // per_step,
                initial=p.batch_in_epoch // per_step,
                desc=f"epoch {p.epoch + 1}",
                unit="step",
                dynamic_ncols=True,
                disable=None if world.is_main else True,
                leave=False,
            )
            remaining = itertools.islice(batches, p.batch_in_epoch, None)
            # full groups only: every rank must take the same number of steps
            while len(group := list(itertools.islice(remaining, per_step))) == per_step:
                micro = [
                    make_batch(examples, pad, bos, eos).to(self.device) for examples in group[mine]
                ]
                loss_sum, grad_norm, lr = self.train_step(micro, p.step + 1)
                p.step += 1
                p.batch_in_epoch += per_step
                bar.update()
                elapsed = (time.monotonic() - start) / 60
                local_stop = self._stop_signal is not None or (
                    max_minutes is not None and elapsed >= max_minutes
                )
                save_due = tc.save_every_minutes is not None and (
                    time.monotonic() - saved_at >= tc.save_every_minutes * 60
                )
                loss_sum, tokens, stop, save_due = step_totals(
                    world,
                    loss_sum,
                    sum(b.n_tokens for b in micro),
                    local_stop,
                    save_due,
                    self.device,
                )
                window["loss"] += loss_sum
                window["tokens"] += tokens
                p.target_tokens += tokens
                minutes = minutes_before + elapsed
                if p.step % tc.log_every == 0:
                    self._log_train(window, grad_norm, lr, minutes, bar)
                if p.step % tc.valid_every == 0:
                    p.minutes = minutes
                    validation_started = time.monotonic()
                    if self._validate_and_save(minutes):
                        bar.close()
                        return "early stopping: no BLEU gain"
                    # the logged tokens/s measure training alone, not validation
                    window["time"] += time.monotonic() - validation_started
                    saved_at = time.monotonic()
                elif save_due and not stop:
                    p.minutes, saving = minutes, time.monotonic()
                    self.save({"saved": "periodic"}, best=False, rolling=False)
                    saved_at = time.monotonic()
                    window["time"] += saved_at - saving  # as for validation: not training
                if max_steps is not None and p.step >= max_steps:
                    bar.close()
                    return f"max_steps {max_steps} reached"
                if stop:
                    bar.close()
                    if self._stop_signal is not None:
                        return f"stopped by {self._stop_signal}"
                    if max_minutes is not None and elapsed >= max_minutes:
                        return f"max_minutes {max_minutes} reached"
                    return "stopped: another rank was told to stop"
            bar.close()
            p.epoch += 1
            p.batch_in_epoch = 0
        return "max_epochs reached"

    def _log_train(
        self, window: dict[str, float], grad_norm: float, lr: float, minutes: float, bar: tqdm
    ) -> None:
        p = self.progress
        elapsed = time.monotonic() - window["time"]
        loss = window["loss"] / max(window["tokens"], 1)
        speed = window["tokens"] / max(elapsed, 1e-9)
        record = {
            "kind": "train",
            "step": p.step,
            "epoch": p.epoch + 1,
            "minutes": round(minutes, 3),
            "loss": round(loss, 4),
            "lr": lr,
            "grad_norm": round(grad_norm, 3),
            "tgt_tokens_total": p.target_tokens,
            "tgt_tokens_per_s": round(speed, 1),
        }
        self._write_curve(record)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{speed:.0f}")
        log.info(
            "step %d epoch %d | loss %.4f | lr %.2e | grad norm %.2f | %.0f tgt tok/s",
            p.step,
            p.epoch + 1,
            loss,
            lr,
            grad_norm,
            speed,
        )
        if self.release_fragments is not None:
            self.release_fragments()
        window.update(loss=0.0, tokens=0, time=time.monotonic())

    def _validate_and_save(self, minutes: float) -> bool:
        """Validate, checkpoint, adjust the schedule; True when early stopping triggers."""
        p, tc = self.progress, self.config.train
        t0 = time.monotonic()
        # rank 0 validates; every rank then takes the same schedule and stopping decisions
        v = broadcast_object(self.world, self.validate() if self.world.is_main else None)
        improved = v.bleu > p.best_bleu
        if improved:
            p.best_bleu, p.best_step, p.stale_validations = v.bleu, p.step, 0
        else:
            p.stale_validations += 1
        reduced = self.schedule.validated(v.bleu)
        record = {
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
            "seconds": round(time.monotonic() - t0, 1),
        }
        self._write_curve(record)
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
        scores = {
            "valid_bleu": v.bleu,
            "valid_chrf": v.chrf,
            "valid_loss": v.loss,
            "valid_ppl": v.perplexity,
            "bleu_signature": v.signature,
            "step": p.step,
        }
        self.save(scores, best=improved)
        patience = tc.early_stopping_patience
        return patience is not None and p.stale_validations >= patience
