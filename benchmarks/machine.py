"""The processor a benchmark ran on, and what its matrix units can do.

Machines of one kind do not all have the same processor (an AMD EPYC Zen 3 with AVX2
only, a Zen 4 with AVX-512 BF16, an Intel Xeon with AMX), so every benchmark records
this next to its figures: the CPU's name and family/model numbers, the flags that
decide the fast paths, and the measured fp32 and bf16 matrix-product throughput with
the benchmark's threads, at a square size and at the size of one decoder step of
the default model (batch 128, input 1,280, gates 2,048).

    python benchmarks/machine.py            # prints the JSON record
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from nmt.device import native_bf16

# Flags that select kernels for this project's work: AVX2/FMA (fp32), AVX-512 and its
# BF16 and VNNI extensions, AVX-VNNI, AMX tiles (bf16, int8).
FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# (name, m, k, n): one decoder step of the default model is a product of its batch rows
# (128) by input-feeding input (embedding 256 + attention 512 + hidden 512) by 4 gates.
SHAPES = (("square_1024", 1024, 1024, 1024), ("decoder_step", 128, 1280, 2048))


def processor() -> dict:
    """Name, vendor, family/model numbers and the relevant flags, from /proc/cpuinfo."""
    info: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key and key not in info:
            info[key] = value.strip()
        if not line.strip() and info:
            break  # the first processor's block is enough
    flags = set(info.get("flags", "").split())
    return {
        "model_name": info.get("model name", "?"),
        "vendor": info.get("vendor_id", "?"),
        "family": int(info.get("cpu family", "0")),
        "model": int(info.get("model", "0")),
        "flags": [f for f in FLAGS if f in flags],
        "threads": torch.get_num_threads(),
    }


def matmul_gflops(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Median GFLOP/s of ``(m, k) @ (k, n)`` in ``dtype`` over about ``seconds``."""
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    a @ b  # warm-up
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    # at least 3: bf16 without hardware support can take seconds per product
    while time.perf_counter() < deadline or len(rates) < 3:
        start = time.perf_counter()
        a @ b
        rates.append(2 * m * k * n / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def describe(seconds: float = 1.0) -> dict:
    """The processor and its measured fp32/bf16 peaks (GFLOP/s) at ``SHAPES``."""
    peaks = {}
    for name, m, k, n in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            label = f"{name}_{str(dtype).removeprefix('torch.').replace('bfloat16', 'bf16')}"
            peaks[label] = round(matmul_gflops(m, k, n, dtype, seconds), 1)
    native = native_bf16(torch.device("cpu"))
    return {**processor(), "native_bf16": native, "gflops": peaks}


if __name__ == "__main__":
    print(json.dumps(describe(), indent=2))
