"""The output layer's label-smoothed cross-entropy, computed a chunk of tokens at a time.

Training scores every target token of a batch against the whole vocabulary:
``F.cross_entropy(F.linear(x, W, b), y, label_smoothing=eps)`` over N tokens makes N x V
logits (4,000 tokens x 5,483 target pieces in fp32 for the default en->de batch: 88 MB)
that log-softmax, the loss and each of their backward passes read and write in full,
far outside the processor's caches. Here the tokens go through in chunks whose logits
stay in cache, and each chunk's gradients (for the input rows, the weight and the bias)
are computed right away, from the probabilities at hand, and kept for the backward
pass, which only scales them by the incoming gradient (the way fused linear
cross-entropy kernels work). The matrix products are the same three; what goes is the
traffic through memory, and the N x V tensors autograd would keep.

Same loss and gradients as the built-in up to the order of the sums (a reference test
keeps them equal: ``tests/test_output_loss.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _chunk_loss(
    logits: torch.Tensor, targets: torch.Tensor, smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits: (C, V), targets: (C,) -> summed loss (), log-probabilities (C, V) fp32."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    picked = log_probs.gather(1, targets.unsqueeze(1)).sum()
    loss = -(1.0 - smoothing) * picked - smoothing / log_probs.size(1) * log_probs.sum()
    return loss, log_probs


class _ChunkedOutputLoss(torch.autograd.Function):
    """Summed loss; the gradients are computed in the forward pass, chunk by chunk."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        smoothing: float,
        rows: int,
    ) -> torch.Tensor:
        vocab = weight.size(0)
        ctx.weight_dtype = weight.dtype
        want_w, want_b = ctx.needs_input_grad[1], bias is not None and ctx.needs_input_grad[2]
        total = hidden.new_zeros((), dtype=torch.float32)
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if want_w else None
        grad_b = hidden.new_zeros(vocab, dtype=torch.float32) if want_b else None
        for start in range(0, hidden.size(0), rows):
            h, y = hidden[start : start + rows], targets[start : start + rows]
            loss, grad = _chunk_loss(F.linear(h, weight, bias), y, smoothing)
            total += loss
            # d loss / d logits = softmax - (1 - eps) * one_hot(y) - eps / V
            grad = grad.exp_().sub_(smoothing / vocab)
            grad.scatter_add_(1, y.unsqueeze(1), grad.new_full((h.size(0), 1), smoothing - 1))
            if grad_b is not None:
                grad_b += grad.sum(0)
            grad_h[start : start + rows] = torch.mm(grad, weight)
            if grad_w is not None:
                grad_w += torch.mm(grad.t(), h)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        return total

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_h, grad_w, grad_b = ctx.saved_tensors
        return (
            grad_h * grad_loss.to(grad_h.dtype),
            None if grad_w is None else (grad_w * grad_loss).to(ctx.weight_dtype),
            None if grad_b is None else grad_b * grad_loss,
            None,
            None,
            None,
        )


def output_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    label_smoothing: float,
    rows: int,
) -> torch.Tensor:
    """Summed cross-entropy of the output layer ``F.linear(hidden, weight, bias)``.

    Args:
        hidden: (N, D) states of the real target tokens; weight: (V, D); bias: (V,) or None.
        targets: (N,) ids; label_smoothing: eps, spread uniformly over all V classes as
            ``F.cross_entropy`` does; rows: tokens a chunk.

    Returns:
        () fp32, ``F.cross_entropy(..., reduction="sum", label_smoothing=eps)``.
    """
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _ChunkedOutputLoss.apply(hidden, weight, bias, targets, label_smoothing, rows)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.size(0), rows):
        logits = F.linear(hidden[start : start + rows], weight, bias)
        total += _chunk_loss(logits, targets[start : start + rows], label_smoothing)[0]
    return total
