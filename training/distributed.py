"""Data-parallel training with ``torchrun``: the process group and the few collectives
the trainer needs. A plain ``nmt train`` (no torchrun) is a world of one, and every
function here is then a no-op."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and curves, and validates."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device, timeout_minutes: float = 30.0) -> World:
    """Join the process group that torchrun describes in the environment, if any.

    gloo on CPU, nccl on CUDA. ``timeout_minutes`` bounds how long a rank waits for the
    others in a collective: if a peer dies, the survivors fail instead of hanging.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=timedelta(minutes=timeout_minutes),
        )
    log.info("rank %d of %d (local rank %d)", world.rank, world.size, world.local_rank)
    return world


def close_world(world: World) -> None:
    """Leave the process group once every rank is done (call after dropping any
    DistributedDataParallel wrapper: its communication threads use the group)."""
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_object(world: World, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(world: World, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not world.distributed:
        return [value]
    values: list[Any] = [None] * world.size
    dist.all_gather_object(values, value)
    return values


class StepTotals(NamedTuple):
    """What all ranks agree on after a step."""

    loss_sum: float
    tokens: int
    stop: bool
    save: bool
    minutes: float


def step_totals(
    world: World,
    loss_sum: float,
    tokens: int,
    stop: bool,
    save: bool,
    minutes: float,
    device: torch.device,
) -> StepTotals:
    """One all-reduce per step: summed loss and target tokens of all ranks, whether
    any rank wants to stop (a signal, the time limit) or to save (its clock says a
    periodic checkpoint is due), so that all act after the same step and none waits
    forever for the others, and the ranks' mean of ``minutes`` elapsed, so that a
    schedule on the time budget sets the same learning rate on every rank."""
    if not world.distributed:
        return StepTotals(loss_sum, tokens, stop, save, minutes)
    totals = [loss_sum, float(tokens), float(stop), float(save), minutes]
    reduced = torch.tensor(totals, dtype=torch.float64).to(device)
    dist.all_reduce(reduced)
    return StepTotals(
        float(reduced[0]),
        int(reduced[1]),
        bool(reduced[2] > 0),
        bool(reduced[3] > 0),
        float(reduced[4]) / world.size,
    )
