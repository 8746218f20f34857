"""Faster CPU inference: dynamic int8 quantization and bf16 autocast."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from conftest import make_pairs

from nmt.device import native_bf16
from nmt.model import ModelConfig, Seq2Seq
from nmt.quantization import quantize_int8
from nmt.search import SearchConfig
from nmt.translator import Translator


def _assert_mostly_unchanged(reference: Translator, faster: Translator, seed: int) -> None:
    """At least 80 % of 40 toy sentences translate identically at beam 3."""
    sources = [src for src, _ in make_pairs(40, seed=seed)]
    cfg = SearchConfig(beam_size=3)
    pairs = zip(reference.translate(sources, cfg), faster.translate(sources, cfg), strict=True)
    same = sum(a.text == b.text for a, b in pairs)
    assert same >= 0.8 * len(sources), f"only {same}/{len(sources)} translations unchanged"


def test_int8_quantizes_linear_and_encoder_layers_and_keeps_translations(toy_model: Path) -> None:
    fp32 = Translator.from_checkpoint(toy_model, "cpu")
    int8 = Translator.from_checkpoint(toy_model, "cpu", quantize="int8")
    modules = list(int8.model.modules())
    assert not [m for m in modules if type(m) in (torch.nn.Linear, torch.nn.LSTM)]
    quantized = {type(m).__name__ for m in modules if "quantized" in type(m).__module__}
    assert {"LSTM", "Linear"} <= quantized
    assert all(layer.packed is not None for layer in int8.model.decoder.layers)
    _assert_mostly_unchanged(fp32, int8, seed=11)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_int8_decoder_steps_stay_close_to_fp32(cell: str) -> None:
    """The packed int8 recurrent layers compute what the fp32 ones do, up to rounding."""
    torch.manual_seed(0)
    config = ModelConfig(
        cell=cell,
        emb_size=16,
        encoder_hidden=16,
        decoder_hidden=32,
        decoder_layers=2,
        init_range=0.0,  # PyTorch's larger initial weights: activations far from 0
    )
    fp32 = Seq2Seq(config, src_vocab=30, tgt_vocab=40, pad_id=0).eval()
    int8 = quantize_int8(copy.deepcopy(fp32))
    src = torch.randint(4, 30, (3, 7))
    lengths = torch.tensor([7, 5, 2])
    prev = torch.tensor([2, 2, 2])
    with torch.inference_mode():
        (mem_a, state_a), (mem_b, state_b) = fp32.encode(src, lengths), int8.encode(src, lengths)
        for step in range(4):
            logp_a, _, state_a = fp32.step(prev, mem_a, state_a)
            logp_b, _, state_b = int8.step(prev, mem_b, state_b)
            assert (logp_a - logp_b).abs().max() < 0.05, f"step {step}"
            # the attentional vector feeds the output layer: compare it directly
            assert (state_a.feed - state_b.feed).abs().max() < 0.02, f"step {step}"
            prev = logp_a.argmax(dim=-1)


def test_unknown_quantization_is_refused(toy_model: Path) -> None:
    with pytest.raises(ValueError, match="unknown quantization"):
        Translator.from_checkpoint(toy_model, "cpu", quantize="int4")


def test_bf16_decoding_keeps_translations(toy_model: Path) -> None:
    """Where this CPU has bf16 instructions; elsewhere bf16 is refused when loading."""
    with pytest.raises(ValueError, match="int8 quantization decodes in fp32"):
        Translator.from_checkpoint(toy_model, "cpu", quantize="int8", precision="bf16")
    fp32 = Translator.from_checkpoint(toy_model, "cpu")
    if not native_bf16(torch.device("cpu")):
        with pytest.raises(ValueError, match="bf16 instructions"):
            Translator.from_checkpoint(toy_model, "cpu", precision="bf16")
        return
    bf16 = Translator.from_checkpoint(toy_model, "cpu", precision="bf16")
    assert bf16.amp_dtype is torch.bfloat16 and fp32.amp_dtype is None
    _assert_mostly_unchanged(fp32, bf16, seed=12)
