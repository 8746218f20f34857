"""The training step with the chunked output-layer loss (``nmt.output_loss``) against
the same step with ``F.cross_entropy`` over the whole batch's logits, alternating in
one process so that the machine's drift falls on both alike.

Both models start from the same weights and train on the same random batches of the
shape Multi30k gives (``--sentences`` x ``--src-len`` / ``--tgt-len`` subwords, the
shipped config's model and vocabulary ``--vocab``). Prints each step's milliseconds and
the median of the per-round ratios (built-in / chunked: above 1 means chunked is faster).

    python benchmarks/loss_speed.py --rounds 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from gpu_profile import CONFIG, random_batch, training_step
from machine import describe

import nmt.model
from nmt.model import Seq2Seq
from training.config import load_config


def builtin_output_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    label_smoothing: float,
    rows: int,
) -> torch.Tensor:
    """``nmt.output_loss.output_loss`` as it was: one ``F.cross_entropy`` over all N x V
    logits (``rows`` unused)."""
    logits = F.linear(hidden, weight, bias).float()
    return F.cross_entropy(logits, targets, reduction="sum", label_smoothing=label_smoothing)


# Seq2Seq.loss calls the loss through nmt.model's name for it; each variant sets it.
LOSSES = {"builtin": builtin_output_loss, "chunked": nmt.model.output_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--sentences", type=int, default=270)
    parser.add_argument("--src-len", type=int, default=13)
    parser.add_argument("--tgt-len", type=int, default=15)
    parser.add_argument("--vocab", type=int, default=5483, help="target pieces (Multi30k en-de)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_config(CONFIG)
    steps = {}
    for name in LOSSES:
        torch.manual_seed(0)
        model = Seq2Seq(config.model, args.vocab, args.vocab, pad_id=0)
        steps[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-4, fused=True))
    batch = random_batch(args.sentences, args.src_len, args.tgt_len, torch.device("cpu"))

    def step_ms(name: str) -> float:
        nmt.model.output_loss = LOSSES[name]
        started = time.perf_counter()
        training_step(*steps[name], batch, config.train, None)
        return (time.perf_counter() - started) * 1000

    for name in LOSSES:  # warm-up
        step_ms(name)
    ms: dict[str, list[float]] = {name: [] for name in LOSSES}
    for r in range(args.rounds):
        for name in sorted(LOSSES, reverse=r % 2 == 1):
            ms[name].append(step_ms(name))
    ratios = [a / b for a, b in zip(ms["builtin"], ms["chunked"], strict=True)]
    print("processor:", describe())
    for name, values in ms.items():
        print(f"{name}: median {statistics.median(values):.0f} ms", [round(v) for v in values])
    print(f"per-round ratio builtin / chunked: median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
