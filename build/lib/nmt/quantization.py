"""Dynamic int8 quantization for CPU inference."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from nmt.model import Seq2Seq


def quantize_int8(model: Seq2Seq) -> Seq2Seq:
    """Quantize the model's ``nn.Linear`` and ``nn.LSTM`` / ``nn.GRU`` layers to int8.

    Weights become int8 once; activations are quantized on the fly per batch (dynamic
    quantization), so no calibration data is needed. Covered: the output layer (the
    largest matrix product of a decoding step), attention and output projections, the
    bridge and the encoder RNN. The decoder's recurrent cell keeps fp32 weights: it is
    written with ``F.linear`` on its own parameters, which dynamic quantization does not
    rewrite. CPU only; returns the model quantized in place, in eval mode.
    """
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 dynamic quantization runs on CPU only; use --device cpu")
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which is not a
        # dependency here; the eager-mode API still works in this torch version.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(
            model.eval(), {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8, inplace=True
        )
    assert isinstance(quantized, Seq2Seq)
    return quantized
