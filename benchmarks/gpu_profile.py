"""Where a training step's time goes on a GPU: the default model's forward, backward and
Adam update on random batches of the shape Multi30k gives (``--src-len`` and
``--tgt-len`` subwords a sentence), under the precision training picks.

For each batch size: wall milliseconds a step (median of ``--steps``) and target
tokens/s; then, under ``torch.profiler``, the GPU's busy time a step (the kernels' own
time added up) and the kernels launched a step. Busy time far below wall time means
the step waits on launches, not on arithmetic. Writes OUT/profile.json and the
operator table of the largest batch (OUT/profile_ops.txt).

    python benchmarks/gpu_profile.py --out runs/gpu_profile              # on a GPU
    python benchmarks/gpu_profile.py --out runs/gpu_profile_cpu --device cpu \\
        --batches 16,32 --steps 2                                        # tried here
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from nmt.device import autocast, autocast_dtype, synchronize
from nmt.model import Seq2Seq
from training.config import TrainConfig, load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "multi30k_en_de.yaml"
VOCAB = 5000  # about the pieces Multi30k's joint 8,000-piece model uses per side


def random_batch(sentences: int, src_len: int, tgt_len: int, device: torch.device) -> dict:
    """src (B, S), tgt_in and tgt_out (B, T) ids above the specials, full lengths."""

    def ids(length: int) -> torch.Tensor:
        return torch.randint(4, VOCAB, (sentences, length), device=device)

    lengths = torch.full((sentences,), src_len, dtype=torch.long, device=device)
    return {"src": ids(src_len), "src_lengths": lengths, "tgt_in": ids(tgt_len),
            "tgt_out": ids(tgt_len)}  # fmt: skip


def training_step(
    model: Seq2Seq, optimizer: torch.optim.Optimizer, batch: dict, train: TrainConfig, amp
) -> None:
    """The trainer's step (training/trainer.py ``train_step``) without its bookkeeping."""
    with autocast(model.device, amp):
        loss = model.loss(**batch, label_smoothing=train.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    (loss / batch["tgt_out"].numel()).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), train.clip_norm)
    optimizer.step()


def measure(step: Callable[[], None], device: torch.device, batch: dict, steps: int) -> dict:
    """Wall time of ``step``, then the profiler's GPU busy time and kernel count a step."""
    for _ in range(3):  # warm-up: kernels chosen, allocator filled
        step()
    walls = []
    for _ in range(steps):
        synchronize(device)
        started = time.perf_counter()
        step()
        synchronize(device)
        walls.append(time.perf_counter() - started)
    wall_ms = statistics.median(walls) * 1000
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for _ in range(2):
            step()
        synchronize(device)
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    result = {
        "sentences": batch["src"].shape[0],
        "wall_ms_per_step": round(wall_ms, 2),
        "tgt_tokens_per_s": round(batch["tgt_out"].numel() / wall_ms * 1000),
        "kernels_per_step": len(kernels) / 2,
        "gpu_busy_ms_per_step": round(sum(e.time_range.elapsed_us() for e in kernels) / 2000, 2),
    }
    return result | {"ops": prof.key_averages().table(sort_by="self_device_time_total"
                                                      if kernels else "self_cpu_time_total",
                                                      row_limit=25)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", default="300,1200,4800", help="sentences a batch")
    parser.add_argument("--src-len", type=int, default=14)
    parser.add_argument("--tgt-len", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    config = load_config(CONFIG)
    amp = autocast_dtype(device, config.train.precision)
    model = Seq2Seq(config.model, VOCAB, VOCAB, pad_id=0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    results = []
    for sentences in (int(x) for x in args.batches.split(",")):
        batch = random_batch(sentences, args.src_len, args.tgt_len, device)
        step = partial(training_step, model, optimizer, batch, config.train, amp)
        results.append(measure(step, device, batch, args.steps))
        print({k: v for k, v in results[-1].items() if k != "ops"}, flush=True)
    (args.out / "profile_ops.txt").write_text(results[-1]["ops"])
    print(results[-1]["ops"])
    for r in results:
        del r["ops"]
    summary = {"device": str(device), "autocast": str(amp), "results": results}
    if device.type == "cuda":
        summary["gpu"] = torch.cuda.get_device_name(device)
    (args.out / "profile.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
