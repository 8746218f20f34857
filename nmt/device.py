"""Device, dtype and autocast decisions, made in one place.

Only the CPU paths are exercised by the test suite (the development and CI
machines have no GPU); the CUDA branches follow PyTorch's documented APIs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
from collections.abc import Iterator

import torch

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc only
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel.

    Training allocates and frees the same large buffers (the N x V output-layer
    activations and their gradients) at every step. By default glibc serves such
    blocks with mmap and unmaps them on free, so every step page-faults hundreds
    of MB in again; on a 2-core CPU that cost a third of the step time. Returns
    False where the C library is not glibc (nothing changes there).

    Blocks of varying sizes fragment the heap over time, so callers should also
    release them now and then: see ``FragmentReleaser``.
    """
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, 2**30) == 1
    ok &= libc.mallopt(_M_TOP_PAD, 64 * 2**20) == 1
    log.debug("glibc malloc tuned for reuse: %s", ok)
    return bool(ok)


def resident_bytes(pid: int | str = "self") -> int | None:
    """A process's resident memory now (Linux ``/proc``; this one by default), or None
    where unknown."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class FragmentReleaser:
    """Returns free heap pages to the kernel (glibc ``malloc_trim``) when resident
    memory has grown by ``slack_bytes`` since the last release; bounds the heap growth
    that ``keep_freed_memory`` allows.

    A release costs more than the call: the next step faults every page it touches in
    again (about 0.34 s per release for the default model on a 2-core CPU, call
    included), hence the slack instead of a release at every log line.
    """

    def __init__(self, slack_bytes: int = 2**30) -> None:
        self.slack_bytes = slack_bytes
        self.baseline: int | None = None  # set by the first call: the working set

    def __call__(self) -> bool:
        """Release if resident memory is ``slack_bytes`` above the baseline; True if it did."""
        libc, rss = _libc(), resident_bytes()
        if libc is None or rss is None:
            return False
        if self.baseline is None:
            self.baseline = rss
            return False
        if rss - self.baseline < self.slack_bytes:
            return False
        libc.malloc_trim(0)
        self.baseline = resident_bytes() or rss
        log.debug("heap trimmed: resident %.0f -> %.0f MiB", rss / 2**20, self.baseline / 2**20)
        return True


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


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a host tensor to ``device``, asynchronously through pinned memory on CUDA.

    Pinned host memory only pays off for asynchronous copies to a GPU.
    """
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
