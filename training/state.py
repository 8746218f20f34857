"""The training state: what ``last.pt`` holds beyond the model, so that a resumed run
continues exactly (optimizer, schedule, loss scaler, progress, random generators),
and the run directory's checkpoints that hold it."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nmt.checkpoint import checkpoint_payload, save_checkpoint
from nmt.model import Seq2Seq
from training.config import Config
from training.data import PreparedData
from training.distributed import World, gather_objects
from training.schedule import WarmupPlateau
from training.weight_average import WeightAverage, swapped_in

log = logging.getLogger("training.trainer")

# One (CPU, CUDA or None) random generator state per rank.
RngStates = list[tuple[torch.Tensor, torch.Tensor | None]]


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
class Optimization:
    """What updates the weights: optimizer, learning-rate schedule, loss scaler."""

    optimizer: torch.optim.Optimizer
    schedule: WarmupPlateau
    scaler: torch.amp.GradScaler


def rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This process's random generator states (CPU, and CUDA on a GPU)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def training_state(opt: Optimization, progress: Progress, rngs: RngStates) -> dict[str, Any]:
    """The ``training`` entry of a checkpoint; ``rngs``: every rank's, in rank order
    (``rng_state`` of each: one generator state per entry, as ``restore_training_state``
    sets it)."""
    state: dict[str, Any] = {
        "optimizer": opt.optimizer.state_dict(),
        "schedule": opt.schedule.state_dict(),
        "scaler": opt.scaler.state_dict(),
        "progress": asdict(progress),
        "rng": rngs[0][0],
        "cuda_rng": rngs[0][1],
    }
    if len(rngs) > 1:
        state["rng_per_rank"] = [cpu for cpu, _ in rngs]
        state["cuda_rng_per_rank"] = [cuda for _, cuda in rngs]
    return state


def restore_training_state(
    state: dict[str, Any], opt: Optimization, world: World, device: torch.device, source: str
) -> Progress:
    """Load ``state`` (from ``training_state``) into ``opt`` and this rank's random
    generators; returns the progress. ``source`` names the file, for errors."""
    opt.optimizer.load_state_dict(state["optimizer"])
    opt.schedule.load_state_dict(state["schedule"])
    opt.scaler.load_state_dict(state["scaler"])
    rngs = state.get("rng_per_rank") or [state["rng"]]
    if len(rngs) != world.size:
        raise ValueError(
            f"{source} was written by {len(rngs)} process(es); resume it with as many, "
            f"not {world.size}"
        )
    torch.set_rng_state(rngs[world.rank])
    cuda = (state.get("cuda_rng_per_rank") or [state.get("cuda_rng")])[world.rank]
    if isinstance(cuda, list):  # before 2026-11-27 one state per visible GPU was written
        cuda = cuda[device.index or 0]
    if device.type == "cuda" and cuda is not None:
        torch.cuda.set_rng_state(cuda, device)
    return Progress(**state["progress"])


class RunCheckpoints:
    """Writes a run directory's checkpoints: ``best.pt`` (model only), ``last.pt`` and
    ``step_N.pt`` (model and training state)."""

    def __init__(
        self,
        config: Config,
        world: World,
        device: torch.device,
        data: PreparedData,
        average: WeightAverage | None = None,
    ) -> None:
        self.config = config
        self.out = Path(config.output_dir)
        self.world = world
        self.device = device
        self.tokenizers = (data.src_tokenizer, data.tgt_tokenizer)
        self.average = average  # when kept, best.pt holds the averaged weights

    def save(
        self,
        model: Seq2Seq,
        opt: Optimization,
        progress: Progress,
        scores: dict[str, Any],
        best: bool,
        rolling: bool = True,
    ) -> None:
        """Write best.pt (when ``best``), then last.pt (with training state), then a
        rolling step checkpoint (when ``rolling``). With a weight ``average``, best.pt
        holds the averaged weights, the others the trained ones and the average.

        best.pt goes first: a kill between the two writes then leaves a last.pt that
        does not yet know of the new best, and the resumed run validates again,
        rather than a last.pt that believes a best.pt was written that never was.
        Called by every rank (the RNG states of all ranks are gathered); rank 0 writes.
        """
        rngs = gather_objects(self.world, rng_state(self.device))
        distributed = self.world.distributed
        fingerprints = gather_objects(self.world, fingerprint(model)) if distributed else []
        if not self.world.is_main:
            return
        if len(set(fingerprints)) > 1:
            log.error("replicas have diverged: parameter fingerprints %s", fingerprints)
        training = training_state(opt, progress, rngs)
        if fingerprints:
            training["replica_fingerprints"] = fingerprints
        if self.average is not None:
            training["weight_average"] = self.average.state_dict()
        if best:
            with swapped_in(self.average):
                best_payload = self._payload(model, progress, scores, None)
                save_checkpoint(best_payload, self.out / "best.pt")
        payload = self._payload(model, progress, scores, training)
        save_checkpoint(payload, self.out / "last.pt")
        keep = self.config.train.keep_last
        if rolling and keep > 0:
            save_checkpoint(payload, self.out / f"step_{progress.step}.pt")
            steps = sorted(self.out.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
            for old in steps[:-keep]:
                old.unlink(missing_ok=True)

    def _payload(
        self,
        model: Seq2Seq,
        progress: Progress,
        scores: dict[str, Any],
        training: dict[str, Any] | None,
    ) -> dict[str, Any]:
        data = self.config.data
        return checkpoint_payload(
            model,
            *self.tokenizers,
            languages=(data.src_lang, data.tgt_lang),
            step=progress.step,
            scores=scores,
            run_config=self.config.model_dump(mode="json"),
            training=training,
        )


def fingerprint(model: Seq2Seq) -> str:
    """A hash of the exact parameter values: equal on all ranks unless they diverged."""
    digest = hashlib.sha256()
    for param in model.parameters():
        digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
