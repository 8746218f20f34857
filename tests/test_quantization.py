"""Faster CPU inference: dynamic int8 quantization and bf16 autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_pairs

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
    _assert_mostly_unchanged(fp32, int8, seed=11)


def test_unknown_quantization_is_refused(toy_model: Path) -> None:
    with pytest.raises(ValueError, match="unknown quantization"):
        Translator.from_checkpoint(toy_model, "cpu", quantize="int4")


def test_bf16_decoding_keeps_translations(toy_model: Path) -> None:
    fp32 = Translator.from_checkpoint(toy_model, "cpu")
    bf16 = Translator.from_checkpoint(toy_model, "cpu", precision="bf16")
    assert bf16.amp_dtype is torch.bfloat16 and fp32.amp_dtype is None
    _assert_mostly_unchanged(fp32, bf16, seed=12)
    with pytest.raises(ValueError, match="int8 quantization decodes in fp32"):
        Translator.from_checkpoint(toy_model, "cpu", quantize="int8", precision="bf16")
