"""Matrix products with weights prepared once for decoding: dense, or packed int8.

A ``Product`` is ``x -> x W^T + b`` with W fixed. The prepared decoder step applies
its products without knowing which kind they are.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F


class Product(Protocol):
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in) -> (B, out)."""
        ...


@dataclass(frozen=True)
class DenseProduct:
    """``F.linear`` with a fixed (out, in) weight, in the dtype it has."""

    weight: torch.Tensor
    bias: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


@dataclass(frozen=True)
class Int8Product:
    """A dynamic int8 product: W in int8 with one symmetric scale per output row,
    activations quantized per call; the bias is added in fp32.

    At one sentence a decoding step reads every weight once, so int8 cuts the memory
    it waits for by four.
    """

    packed: torch.ScriptObject
    bias: torch.Tensor | None = None

    @classmethod
    def pack(cls, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Int8Product:
        """(out, in) fp32 weight -> its int8 product (CPU only)."""
        w = weight.detach().float()
        scales = (w.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
        zero = torch.zeros(w.size(0), dtype=torch.long)
        with warnings.catch_warnings():
            # quantized tensors are deprecated in favour of torchao (not a dependency);
            # they still work in this torch version
            warnings.simplefilter("ignore", UserWarning)
            q = torch.quantize_per_channel(w, scales, zero, 0, torch.qint8)
        packed = torch.ops.quantized.linear_prepack(q, None)
        return cls(packed, None if bias is None else bias.detach())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.ops.quantized.linear_dynamic(x.float(), self.packed, reduce_range=True)
        return out if self.bias is None else out + self.bias
