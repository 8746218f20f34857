"""The CUDA paths, run on a machine with a GPU: ``pytest -m cuda`` (benchmarks/gpu_check.sh
runs them). Without CUDA they are skipped, each with the reason, never failed.

Tolerances, and why: cuDNN and cuBLAS sum in another order than the CPU's oneDNN, so fp32
results agree to about 1e-5 and a greedy decode may flip where two tokens tie within that;
training on a GPU is reproducible only under ``torch.use_deterministic_algorithms``, which
the resume test turns on.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from test_service import translate, wait_ready
from test_training import StopAfter
from toy import learning_fast, make_pairs

from nmt.checkpoint import load_model, read_checkpoint
from nmt.device import autocast, autocast_dtype, resolve_device
from nmt.search import SearchConfig
from nmt.translator import Translator
from service.app import create_app
from service.settings import Settings
from training.config import validate_config
from training.trainer import Trainer

# cuBLAS is deterministic only with a fixed workspace, read when its first handle is
# made: set before any test of this module touches the GPU (gpu_check.sh exports it too)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (pytest -m cuda)"),
]

SOURCES = [src for src, _ in make_pairs(48, seed=5)]
GREEDY = SearchConfig(beam_size=1, n_best=1, alpha=1.0)
BEAM = SearchConfig(beam_size=4, n_best=2, alpha=1.0)


def cuda_config(tiny_config: dict, precision: str, out: Path) -> dict:
    config = copy.deepcopy(tiny_config)
    config["device"] = "cuda"
    config["output_dir"] = str(out)
    config["train"]["precision"] = precision
    return learning_fast(config)


def train_losses(run: Path) -> list[float]:
    lines = (run / "curve.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if r["kind"] == "train"]


def test_the_device_decision_picks_the_gpu_and_its_fastest_precision() -> None:
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert autocast_dtype(torch.device("cuda"), "auto") == expected


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_training_under_autocast_lowers_a_finite_loss(
    tiny_config: dict, tmp_path: Path, precision: str
) -> None:
    run = tmp_path / precision
    trainer = Trainer(validate_config(cuda_config(tiny_config, precision, run)))
    assert trainer.device.type == "cuda"
    trainer.run(max_steps=40)
    losses = train_losses(run)
    assert all(math.isfinite(x) for x in losses), losses
    assert losses[-1] < 0.7 * losses[0], losses
    scaler = read_checkpoint(run / "last.pt")["training"]["scaler"]
    if precision == "fp16":  # the gradient scaler ran and kept a usable scale
        assert 0 < scaler["scale"] < float("inf")


def test_the_decoder_keeps_its_cell_state_in_fp32_under_bf16(toy_model: Path) -> None:
    model = load_model(toy_model, "cuda").model.eval()
    vocab = model.encoder.embed.num_embeddings
    src = torch.randint(4, vocab, (3, 6), device="cuda")
    lengths = torch.tensor([6, 4, 2])
    prev = torch.full((3,), 2, device="cuda")
    with torch.inference_mode(), autocast(torch.device("cuda"), torch.bfloat16):
        memory, state = model.encode(src, lengths)
        for _ in range(3):
            logp, _, state = model.step(prev, memory, state)
            prev = logp.argmax(dim=-1)
    assert state.c is not None
    assert {c.dtype for c in state.c} == {torch.float32}
    assert {h.dtype for h in state.h} == {torch.float32}
    assert logp.dtype == torch.float32


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_killed_cuda_run_resumes_to_the_same_weights(
    tiny_config: dict, tmp_path: Path, precision: str
) -> None:
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        straight = cuda_config(tiny_config, precision, tmp_path / "straight")
        Trainer(validate_config(straight)).run(max_steps=12)
        split = cuda_config(tiny_config, precision, tmp_path / "split")
        first = Trainer(validate_config(split))
        stop = StopAfter(7)  # as a kill would: mid-epoch, after a validation
        stop.trainer = first
        first.run(max_steps=12, stop=stop)
        resumed = Trainer(validate_config(split), resume=True)
        assert resumed.progress.step == 7
        resumed.run(max_steps=12)
    finally:
        torch.use_deterministic_algorithms(False)
    a = read_checkpoint(tmp_path / "straight" / "last.pt")
    b = read_checkpoint(tmp_path / "split" / "last.pt")
    differing = [name for name in a["model"] if not torch.equal(a["model"][name], b["model"][name])]
    assert not differing, f"resumed weights differ from the uninterrupted run's: {differing}"
    assert a["training"]["scaler"] == b["training"]["scaler"]


def test_cuda_decoding_equals_cpu_decoding(toy_model: Path) -> None:
    cpu = Translator.from_checkpoint(toy_model, "cpu")
    gpu = Translator.from_checkpoint(toy_model, "cuda")
    assert gpu.device.type == "cuda"
    for cfg in (GREEDY, BEAM):
        want, got = cpu.translate(SOURCES, cfg), gpu.translate(SOURCES, cfg)
        same = sum(w.target_tokens == g.target_tokens for w, g in zip(want, got, strict=True))
        assert same >= 0.95 * len(SOURCES), f"{cfg}: {same}/{len(SOURCES)} identical"
        for w, g in zip(want, got, strict=True):
            if w.target_tokens == g.target_tokens:
                assert g.score == pytest.approx(w.score, abs=1e-3)
                assert torch.allclose(
                    torch.tensor(g.attention), torch.tensor(w.attention), atol=1e-3
                )


def test_bf16_decoding_on_cuda_stays_close_to_fp32(toy_model: Path) -> None:
    fp32 = Translator.from_checkpoint(toy_model, "cuda").translate(SOURCES, BEAM)
    bf16 = Translator.from_checkpoint(toy_model, "cuda", precision="bf16").translate(SOURCES, BEAM)
    same = sum(a.text == b.text for a, b in zip(fp32, bf16, strict=True))
    assert same >= 0.9 * len(SOURCES), f"{same}/{len(SOURCES)} identical"


def test_a_checkpoint_trained_on_cuda_decodes_and_resumes_on_cpu(
    tiny_config: dict, tmp_path: Path
) -> None:
    run = tmp_path / "gpu_run"
    Trainer(validate_config(cuda_config(tiny_config, "bf16", run))).run(max_steps=8)
    on_cuda = Translator.from_checkpoint(run / "last.pt", "cuda").translate(SOURCES[:8], GREEDY)
    on_cpu = Translator.from_checkpoint(run / "last.pt", "cpu").translate(SOURCES[:8], GREEDY)
    assert [t.text for t in on_cpu] == [t.text for t in on_cuda]

    moved = copy.deepcopy(tiny_config)
    moved["output_dir"] = str(run)
    moved["train"]["precision"] = "fp32"  # bf16 needs CPU bf16 instructions
    resumed = Trainer(validate_config(moved), resume=True)
    assert resumed.device.type == "cpu" and resumed.progress.step == 8
    resumed.run(max_steps=10)
    assert read_checkpoint(run / "last.pt")["step"] == 10


def test_the_service_translates_on_cuda_with_alignments(toy_model: Path) -> None:
    settings = Settings(models={"toy": toy_model}, device="cuda", max_wait_ms=5)
    with TestClient(create_app(settings)) as client:
        assert wait_ready(client)["ready"]
        models = client.get("/v1/models").json()
        assert "cuda" in json.dumps(models), models
        body = translate(client, text=SOURCES[:4], beam_size=3)
    beam3 = SearchConfig(beam_size=3, n_best=1, alpha=1.0)
    want = Translator.from_checkpoint(toy_model, "cpu").translate(SOURCES[:4], beam3)
    for got, expected in zip(body["translations"], want, strict=True):
        assert got["translation"] == expected.text
        assert len(got["attention"]) == len(got["target_tokens"]) + 1
        assert got["alignment"], "every translation is aligned to its source"
