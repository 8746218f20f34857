"""The chunked output-layer loss equals the built-in cross-entropy, value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nmt.model import ModelConfig, Seq2Seq
from nmt.output_loss import output_loss


def _leaves(n: int = 37, d: int = 16, v: int = 29, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=gen, requires_grad=True)
    weight = torch.randn(v, d, generator=gen, requires_grad=True)
    bias = torch.randn(v, generator=gen, requires_grad=True)
    targets = torch.randint(0, v, (n,), generator=gen)
    return hidden, weight, bias, targets


def _grads(loss: torch.Tensor, *leaves: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, leaves))


@pytest.mark.parametrize("rows", [1, 5, 37, 100])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_chunked_loss_and_gradients_equal_the_builtin(rows: int, smoothing: float) -> None:
    hidden, weight, bias, targets = _leaves()
    plain = F.cross_entropy(
        F.linear(hidden, weight, bias), targets, reduction="sum", label_smoothing=smoothing
    )
    chunked = output_loss(hidden, weight, bias, targets, smoothing, rows)
    torch.testing.assert_close(chunked, plain)
    # the incoming gradient (the trainer's 1 / tokens) scales every gradient
    for got, want in zip(
        _grads(chunked * 0.37, hidden, weight, bias),
        _grads(plain * 0.37, hidden, weight, bias),
        strict=True,
    ):
        torch.testing.assert_close(got, want)


def test_without_gradients_only_the_loss_is_computed() -> None:
    hidden, weight, bias, targets = _leaves()
    plain = F.cross_entropy(F.linear(hidden, weight, bias), targets, reduction="sum")
    with torch.no_grad():
        loss = output_loss(hidden, weight, bias, targets, 0.0, rows=8)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, plain.detach())


def test_a_frozen_output_layer_gets_no_gradient_and_no_bias_is_allowed() -> None:
    hidden, weight, _, targets = _leaves()
    weight = weight.detach()
    loss = output_loss(hidden, weight, None, targets, 0.1, rows=8)
    loss.backward()
    plain_h = hidden.detach().requires_grad_()
    logits = F.linear(plain_h, weight)
    plain = F.cross_entropy(logits, targets, reduction="sum", label_smoothing=0.1)
    plain.backward()
    assert weight.grad is None
    torch.testing.assert_close(hidden.grad, plain_h.grad)


def test_under_bf16_autocast_it_follows_the_builtin() -> None:
    hidden, weight, bias, targets = _leaves(n=24, d=32, v=50)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = hidden * 1.0  # an activation, as the decoder's output is
        plain = F.cross_entropy(
            F.linear(h, weight, bias).float(), targets, reduction="sum", label_smoothing=0.1
        )
        chunked = output_loss(h, weight, bias, targets, 0.1, rows=7)
    assert chunked.dtype == torch.float32
    torch.testing.assert_close(chunked, plain, rtol=1e-2, atol=1e-2)
    got, want = _grads(chunked, weight), _grads(plain, weight)
    assert got[0].dtype == weight.dtype
    torch.testing.assert_close(got[0], want[0], rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("tie", [False, True])
def test_the_models_loss_equals_cross_entropy_over_its_output_layer(tie: bool) -> None:
    config = ModelConfig(emb_size=16, encoder_hidden=8, decoder_hidden=16, dropout=0.0,
                         tie_embeddings=tie)  # fmt: skip
    torch.manual_seed(0)
    model = Seq2Seq(config, src_vocab=23, tgt_vocab=31, pad_id=0)
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    tgt_in = torch.tensor([[1, 11, 12, 13], [1, 14, 0, 0]])
    tgt_out = torch.tensor([[11, 12, 13, 2], [14, 2, 0, 0]])
    lengths = torch.tensor([4, 2])
    loss = model.loss(src, lengths, tgt_in, tgt_out, label_smoothing=0.1)
    got = _grads(loss, *model.parameters())
    outputs, _ = model(src, lengths, tgt_in)
    real = tgt_out != 0
    plain = F.cross_entropy(
        model.generator(outputs[real]), tgt_out[real], reduction="sum", label_smoothing=0.1
    )
    torch.testing.assert_close(loss, plain)
    for a, b in zip(got, _grads(plain, *model.parameters()), strict=True):
        torch.testing.assert_close(a, b)
