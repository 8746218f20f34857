"""Device, dtype and autocast decisions, made in one place.

Only the CPU paths are exercised by the test suite (the development and CI
machines have no GPU); the CUDA branches follow PyTorch's documented APIs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, get_args

import torch


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a usable device.

    Raises ``ValueError`` with the reason when the requested device is unavailable.
    """
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise ValueError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"device {spec!r} requested but only {count} CUDA device(s) exist")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device type {device.type!r}: use auto, cpu or cuda[:N]")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products in hardware.

    On CPUs without AVX-512 BF16 / AMX, bf16 is emulated and slower than fp32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


Precision = Literal["fp32", "bf16", "fp16", "auto"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
# Training defaults to the fastest precision the hardware has; decoding to fp32, so that a
# translation does not change with the machine (bf16 changes some; int8 decodes in fp32).
TRAINING_PRECISION: Precision = "auto"
DECODING_PRECISION: Precision = "fp32"


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``).

    ``None`` means full fp32. ``auto`` picks bf16 where the hardware has it, else
    fp16 on CUDA and fp32 on CPU. fp16 is only offered on CUDA, where a gradient
    scaler guards it; on CPU it would underflow without one; bf16 on CPU only where
    the CPU has bf16 instructions. Parameters and the optimizer stay in fp32 in every
    case.
    """
    if precision == "auto":
        if native_bf16(device):
            return torch.bfloat16
        return torch.float16 if device.type == "cuda" else None
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cpu" and not native_bf16(device):
            # oneDNN has no emulated bf16 LSTM: it fails in the first forward pass
            raise ValueError(
                "precision bf16 needs a CPU with bf16 instructions (AVX-512 BF16 or AMX); "
                "this one has none: use fp32, or auto (bf16 wherever it is available)"
            )
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        return torch.float16
    raise ValueError(f"unknown precision {precision!r}: use auto, fp32, bf16 or fp16")


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Mixed-precision context for ``device``; a no-op when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on a GPU, so that a timer reads finished work; a no-op
    on the CPU, whose operations return when done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mib(device: torch.device) -> float | None:
    """The most memory PyTorch's allocator has held on a GPU since the process started,
    in MiB; None on the CPU (its resident memory is the operating system's to tell)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def loss_chunk_rows(device: torch.device, vocab_size: int) -> int:
    """Target tokens whose output-layer logits the training loss handles at a time
    (``nmt.output_loss``): on a CPU 4 Mi values (16 MB in fp32, within a shared cache;
    512 rows beat 256, 1,024 and the whole 4,050-row batch on a Zen 3), on a GPU whole
    batches of up to 128 Mi values, where every extra chunk is more kernel launches."""
    elements = 2**27 if device.type == "cuda" else 2**22
    return max(1, elements // vocab_size)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a host tensor to ``device``, asynchronously through pinned memory on CUDA.

    Pinned host memory only pays off for asynchronous copies to a GPU.
    """
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
