"""The one step from a trained model to a model prepared for decoding."""

from __future__ import annotations

import copy
import warnings
from typing import Literal, cast

import torch
from torch import nn

from nmt.decoder import RecurrentLayer, StepWeights
from nmt.device import autocast_dtype
from nmt.inference.model import InferenceModel, PreparedLayer
from nmt.inference.products import DenseProduct, Int8Product, Product
from nmt.model import Seq2Seq

Quantization = Literal["int8"]

# Above this the (vocabulary x gates) table costs more memory than its speed is worth.
GATE_TABLE_MAX_BYTES = 256 * 2**20


@torch.no_grad()
def prepare_for_inference(
    model: Seq2Seq, quantize: Quantization | None = None, precision: str = "fp32"
) -> InferenceModel:
    """Prepare ``model`` for decoding; switches it to eval mode, and leaves its weights
    as they are (int8 quantizes a copy).

    - The embedding part of the decoder's first-layer gates is tabulated for the whole
      target vocabulary (fp32): a search step looks its rows up instead of multiplying
      the embeddings at every step (9 % faster fp32 beam search for the default model,
      whose table takes 45 MB); skipped above ``GATE_TABLE_MAX_BYTES``.
    - Each decoder layer's weights are arranged for its step products once.
    - ``quantize="int8"`` (CPU only): dynamic int8 quantization. ``quantize_dynamic``
      converts a copy's ``nn.Linear`` layers (output layer, attention, combination,
      bridge) and the encoder's ``nn.LSTM``/``GRU``; the decoder's step products are
      packed here, per output row, for the same kernel. Weights become int8 once;
      activations are quantized per batch, so no calibration data is needed.
    - ``precision`` (``fp32``, ``bf16``, ``fp16``, ``auto``): the autocast dtype that
      the translator decodes under (refused where the device lacks it).
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"unknown quantization {quantize!r}; supported: int8")
    device = next(model.parameters()).device
    if quantize == "int8" and device.type != "cpu":
        raise ValueError("int8 dynamic quantization runs on CPU only; use --device cpu")
    if quantize == "int8" and precision != "fp32":
        raise ValueError("int8 quantization decodes in fp32; drop --precision")
    amp_dtype = autocast_dtype(device, precision)
    weights = model.eval().decoder.step_weights()
    first = weights[0]
    table_bytes = model.decoder.embed.num_embeddings * first.bias.numel() * 4
    embedding_gates: torch.Tensor | Product
    if table_bytes <= GATE_TABLE_MAX_BYTES:
        # from the fp32 weights, also for int8: a lookup costs the same either way
        embedding_gates = DenseProduct(first.precomputed, first.bias)(
            model.decoder.embed.weight
        ).float()
    else:
        embedding_gates = _product(first.precomputed, first.bias, quantize)
    recurrent = cast(list[RecurrentLayer], list(model.decoder.layers))
    layers = [
        _prepare_layer(layer, w, quantize) for layer, w in zip(recurrent, weights, strict=True)
    ]
    if quantize == "int8":
        model = _quantize_modules(copy.deepcopy(model))
    return InferenceModel(model, layers, embedding_gates, amp_dtype)


def _product(weight: torch.Tensor, bias: torch.Tensor | None, quantize: str | None) -> Product:
    # An empty matrix (a layer above the first has no precomputed input) is never applied.
    if quantize == "int8" and weight.numel() > 0:
        return Int8Product.pack(weight, bias)
    return DenseProduct(weight.detach(), None if bias is None else bias.detach())


def _prepare_layer(layer: RecurrentLayer, w: StepWeights, quantize: str | None) -> PreparedLayer:
    hidden = None if w.hidden is None else _product(w.hidden, layer.bias_h, quantize)
    return PreparedLayer(layer.cell, _product(w.recurrent, None, quantize), hidden, w.bias.detach())


def _quantize_modules(model: Seq2Seq) -> Seq2Seq:
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which is not a
        # dependency here; the eager-mode API still works in this torch version.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(
            model, {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8, inplace=True
        )
    assert isinstance(quantized, Seq2Seq)
    return quantized
