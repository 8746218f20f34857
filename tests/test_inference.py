"""The model prepared for decoding (``nmt.inference``) decodes as the plain model does:
fp32 equal within float tolerance, int8 and bf16 within the tolerances stated here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from toy import make_pairs

import nmt.inference.prepare as prepare_module
from nmt.checkpoint import load_model, read_checkpoint, save_checkpoint
from nmt.device import native_bf16
from nmt.inference import prepare_for_inference
from nmt.inference.ensemble import Ensemble
from nmt.inference.products import DenseProduct, Int8Product
from nmt.model import ModelConfig, Seq2Seq
from nmt.search import SearchConfig
from nmt.translator import Translator, decode_ids


def small_model(cell: str, layers: int = 2, seed: int = 0, tied: bool = False) -> Seq2Seq:
    torch.manual_seed(seed)
    config = ModelConfig(
        cell=cell,
        emb_size=16,
        encoder_hidden=16,
        decoder_hidden=32,
        decoder_layers=layers,
        tie_embeddings=tied,  # the attentional vector then has 16 units, not 32
        init_range=0.0,  # PyTorch's larger initial weights: activations far from 0
    )
    return Seq2Seq(config, src_vocab=30, tgt_vocab=40, pad_id=0).eval()


def run_steps(model, steps: int = 4) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Log-probabilities, attention and attentional vector of greedy steps."""
    src, lengths = (
        torch.randint(4, 30, (3, 7), generator=torch.Generator().manual_seed(1)),
        (torch.tensor([7, 5, 2])),
    )
    prev = torch.tensor([2, 2, 2])
    out = []
    with torch.inference_mode():
        memory, state = model.encode(src, lengths)
        for _ in range(steps):
            logp, attn, state = model.step(prev, memory, state)
            out.append((logp, attn, state.feed))
            prev = logp.argmax(dim=-1)
    return out


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("table", [True, False])
@pytest.mark.parametrize("tied", [False, True])
def test_prepared_fp32_step_equals_the_plain_step(
    cell: str, table: bool, tied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not table:
        monkeypatch.setattr(prepare_module, "GATE_TABLE_MAX_BYTES", 0)
    plain = small_model(cell, tied=tied)
    prepared = prepare_for_inference(plain)
    assert isinstance(prepared.embedding_gates, torch.Tensor) is table
    for expected, got in zip(run_steps(plain), run_steps(prepared), strict=True):
        for e, g in zip(expected, got, strict=True):
            torch.testing.assert_close(g, e)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("tied", [False, True])
def test_int8_steps_stay_close_to_fp32(cell: str, tied: bool) -> None:
    """int8 tolerance: log-probabilities within 0.05, attentional vectors within 0.02."""
    plain = small_model(cell, tied=tied)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    int8 = prepare_for_inference(plain, quantize="int8")
    assert all(isinstance(layer.recurrent, Int8Product) for layer in int8.layers)
    for step, (a, b) in enumerate(zip(run_steps(plain), run_steps(int8), strict=True)):
        assert (a[0] - b[0]).abs().max() < 0.05, f"step {step}"
        assert (a[2] - b[2]).abs().max() < 0.02, f"step {step}"
    # int8 quantizes a copy: the trained model is untouched
    assert all(torch.equal(v, before[k]) for k, v in plain.state_dict().items())
    assert type(plain.generator) is torch.nn.Linear


def test_prepared_model_finds_the_plain_models_tokens_and_scores(toy_model: Path) -> None:
    """On real sentences of the toy model: identical tokens, scores within 1e-4, at
    beam 5 and greedy."""
    plain = load_model(toy_model, "cpu").model
    prepared = prepare_for_inference(plain)
    tokenizer = load_model(toy_model, "cpu").src_tokenizer
    sources = tokenizer.encode([src for src, _ in make_pairs(40, seed=21)])
    for cfg in (SearchConfig(beam_size=5), SearchConfig(beam_size=1)):
        with torch.inference_mode():
            a = decode_ids(plain, sources, 2, 3, cfg)
            b = decode_ids(prepared, sources, 2, 3, cfg)
        for x, y in zip(a, b, strict=True):
            assert x[0].tokens == y[0].tokens
            assert abs(x[0].score - y[0].score) < 1e-4


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
    assert all(isinstance(layer.recurrent, DenseProduct) for layer in fp32.model.layers)
    _assert_mostly_unchanged(fp32, int8, seed=11)


def test_unknown_quantization_is_refused(toy_model: Path) -> None:
    with pytest.raises(ValueError, match="unknown quantization"):
        Translator.from_checkpoint(toy_model, "cpu", quantize="int4")  # type: ignore[arg-type]


def test_a_prepared_model_does_not_train(toy_model: Path) -> None:
    prepared = Translator.from_checkpoint(toy_model, "cpu").model
    with pytest.raises(RuntimeError, match="decodes only"):
        prepared.train()


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


def test_ensemble_step_is_the_mean_of_its_members_probabilities() -> None:
    members = [small_model("lstm", seed=0), small_model("gru", layers=1, seed=1)]
    ensemble = Ensemble(members)
    src = torch.randint(4, 30, (3, 7), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([7, 5, 2])
    prevs = [torch.tensor([2, 2, 2]), torch.tensor([5, 9, 11]), torch.tensor([7, 7, 3])]
    with torch.inference_mode():
        memory, state = ensemble.encode(src, lengths)
        alone = [m.encode(src, lengths) for m in members]
        for prev in prevs:
            logp, attn, state = ensemble.step(prev, memory, state)
            outs = [m.step(prev, mem, st) for m, (mem, st) in zip(members, alone, strict=True)]
            alone = [(mem, out[2]) for (mem, _), out in zip(alone, outs, strict=True)]
            mean = (outs[0][0].exp() + outs[1][0].exp()) / 2
            torch.testing.assert_close(logp, mean.log())
            torch.testing.assert_close(attn, (outs[0][1] + outs[1][1]) / 2)
            rows = state.select(torch.tensor([2, 0]))
            torch.testing.assert_close(rows[1].h[0], outs[1][2].h[0][[2, 0]])
    with pytest.raises(ValueError, match="at least two"):
        Ensemble(members[:1])


def test_a_model_ensembled_with_itself_translates_as_it_does_alone(toy_model: Path) -> None:
    alone = Translator.from_checkpoint(toy_model, "cpu")
    twice = Translator.from_checkpoints([toy_model, toy_model], "cpu")
    assert isinstance(twice.model, Ensemble)
    sources = [src for src, _ in make_pairs(20, seed=23)]
    cfg = SearchConfig(beam_size=4, n_best=2)
    for a, b in zip(alone.translate(sources, cfg), twice.translate(sources, cfg), strict=True):
        assert a.text == b.text and a.alignment == b.alignment
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert [t for t, _ in a.n_best] == [t for t, _ in b.n_best]


def test_checkpoints_of_other_languages_are_not_ensembled(toy_model: Path, tmp_path: Path) -> None:
    payload = read_checkpoint(toy_model)
    payload["tgt_lang"] = "zz"
    other = tmp_path / "other.pt"
    save_checkpoint(payload, other)
    with pytest.raises(ValueError, match="cannot ensemble"):
        Translator.from_checkpoints([toy_model, other], "cpu")
