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

from nmt.model import Seq2Seq
from training.config import load_config


class BuiltinLoss(Seq2Seq):
    """The model with the loss as it was: one ``F.cross_entropy`` over all N x V logits."""

    def loss(
        self,
        src: torch.Tensor,
        src_lengths: torch.Tensor,
        tgt_in: torch.Tensor,
        tgt_out: torch.Tensor,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        outputs, _ = self(src, src_lengths, tgt_in)
        real = tgt_out != self.pad_id
        logits = self.generator(outputs[real]).float()
        return F.cross_entropy(
            logits, tgt_out[real], reduction="sum", label_smoothing=label_smoothing
        )


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
    for name, cls in (("builtin", BuiltinLoss), ("chunked", Seq2Seq)):
        torch.manual_seed(0)
        model = cls(config.model, args.vocab, args.vocab, pad_id=0)
        steps[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-4, fused=True))
    batch = random_batch(args.sentences, args.src_len, args.tgt_len, torch.device("cpu"))
    for model, optimizer in steps.values():  # warm-up
        training_step(model, optimizer, batch, config.train, None)
    ms: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        for name in sorted(steps, reverse=r % 2 == 1):
            started = time.perf_counter()
            training_step(*steps[name], batch, config.train, None)
            ms[name].append((time.perf_counter() - started) * 1000)
    ratios = [a / b for a, b in zip(ms["builtin"], ms["chunked"], strict=True)]
    print("processor:", describe())
    for name, values in ms.items():
        print(f"{name}: median {statistics.median(values):.0f} ms", [round(v) for v in values])
    print(f"per-round ratio builtin / chunked: median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
