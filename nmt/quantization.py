"""Dynamic int8 quantization for CPU inference."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from nmt.decoder import RecurrentLayer, StepWeights, Weight
from nmt.model import Seq2Seq


def quantize_int8(model: Seq2Seq) -> Seq2Seq:
    """Quantize every weight matrix of the model to int8 for CPU inference.

    Weights become int8 once; activations are quantized on the fly per batch (dynamic
    quantization), so no calibration data is needed. ``quantize_dynamic`` covers the
    ``nn.Linear`` layers (the output layer, the largest product of a decoding step;
    attention and output projections; the bridge) and the encoder's ``nn.LSTM``/``GRU``.
    The decoder's recurrent layers are written with their own matrices (see
    ``RecurrentLayer.step_weights``), which ``quantize_dynamic`` does not see: their
    step matrices are packed here, per output row, for the same int8 kernel. At one
    sentence a decoding step reads every weight once, so int8 cuts the memory it waits
    for by four. CPU only; returns the model quantized in place, in eval mode.
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
    decoder = quantized.decoder
    for i, layer in enumerate(decoder.layers):
        assert isinstance(layer, RecurrentLayer)
        w = layer.step_weights(decoder.emb_size if i == 0 else 0)
        layer.packed = StepWeights(
            _pack(w.precomputed),
            _pack(w.recurrent),
            None if w.hidden is None else _pack(w.hidden),
            w.bias.detach(),
        )
    return quantized


def _pack(weight: Weight) -> Weight:
    """(out, in) fp32 matrix -> int8 with one symmetric scale per output row, packed
    for ``torch.ops.quantized.linear_dynamic``. An empty matrix (a layer above the
    first has no precomputed input part) stays as it is: it is never applied."""
    assert isinstance(weight, torch.Tensor)
    if weight.numel() == 0:
        return weight
    w = weight.detach().float()
    scales = (w.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
    zero = torch.zeros(w.size(0), dtype=torch.long)
    q = torch.quantize_per_channel(w, scales, zero, 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(q, None)
