"""Device and precision decisions (nmt/device.py): the CUDA branches are reached by
faking what torch reports; the bf16 autocast path trains for real on CPU."""

from __future__ import annotations

import pytest
import torch

from nmt import device as dev
from nmt import process
from training.config import validate_config
from training.trainer import Trainer


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.resolve_device("auto") == torch.device("cpu")
    assert dev.resolve_device(" CPU ") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        dev.resolve_device("cuda")
    with pytest.raises(ValueError, match=r"unknown device|unsupported device"):
        dev.resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert dev.resolve_device("auto") == torch.device("cuda")
    assert dev.resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="only 1 CUDA device"):
        dev.resolve_device("cuda:3")


@pytest.mark.parametrize(
    ("device", "bf16", "precision", "expected"),
    [
        ("cuda", True, "auto", torch.bfloat16),
        ("cuda", False, "auto", torch.float16),  # older GPUs: fp16 with a gradient scaler
        ("cuda", False, "fp16", torch.float16),
        ("cpu", True, "auto", torch.bfloat16),
        ("cpu", False, "auto", None),  # emulated bf16 would be slower than fp32
        ("cpu", True, "bf16", torch.bfloat16),
        ("cpu", True, "fp32", None),
    ],
)
def test_autocast_dtype(
    monkeypatch: pytest.MonkeyPatch,
    device: str,
    bf16: bool,
    precision: str,
    expected: torch.dtype | None,
) -> None:
    monkeypatch.setattr(dev, "native_bf16", lambda d: bf16)
    assert dev.autocast_dtype(torch.device(device), precision) is expected


def test_fp16_and_unknown_precisions_are_refused_on_cpu() -> None:
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        dev.autocast_dtype(torch.device("cpu"), "fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        dev.autocast_dtype(torch.device("cpu"), "fp8")


def test_bf16_on_a_cpu_without_bf16_instructions_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dev, "native_bf16", lambda d: False)
    with pytest.raises(ValueError, match="bf16 instructions"):
        dev.autocast_dtype(torch.device("cpu"), "bf16")


def test_bf16_autocast_training_runs_on_cpu(tiny_config: dict) -> None:
    """Trains in bf16 where this CPU has it; elsewhere the run is refused up front
    (oneDNN cannot run an LSTM in emulated bf16), not in its first step."""
    tiny_config["train"]["precision"] = "bf16"
    if not dev.native_bf16(torch.device("cpu")):
        with pytest.raises(ValueError, match="bf16 instructions"):
            Trainer(validate_config(tiny_config))
        return
    trainer = Trainer(validate_config(tiny_config))
    assert trainer.amp_dtype is torch.bfloat16
    assert not trainer.opt.scaler.is_enabled()  # only fp16 needs loss scaling
    progress = trainer.run(max_steps=4)
    assert progress.step == 4
    assert all(p.dtype is torch.float32 for p in trainer.model.parameters())
    assert all(torch.isfinite(p.detach()).all() for p in trainer.model.parameters())


@pytest.mark.skipif(process.resident_bytes() is None, reason="needs /proc/self/statm")
def test_fragment_releaser_trims_only_after_the_slack_is_used() -> None:
    libc = process._libc()
    if libc is not None:
        # Earlier tests may have run `nmt train`, whose malloc settings keep freed memory
        # resident: the 128 MiB below would reuse it and resident memory not grow.
        libc.malloc_trim(0)
    release = process.FragmentReleaser(slack_bytes=64 * 2**20)
    assert not release()  # the first call only records the working set
    baseline = release.baseline
    assert baseline is not None and baseline > 0
    grown = torch.ones(32 * 2**20)  # 128 MiB, written: resident memory grows past the slack
    if process._libc() is None:
        assert not release()  # no glibc: nothing to trim with
    else:
        assert release()
        assert release.baseline is not None and release.baseline >= baseline
    assert not release()  # the baseline moved up: no second release for the same memory
    del grown
