"""Decoding speed-ups, applied to a trained model in one explicit step.

``prepare_for_inference(model, quantize=None | "int8", precision="fp32" | "bf16" ...)``
returns an ``InferenceModel`` with the search interface of ``Seq2Seq``. The model
classes in ``nmt`` know nothing of this package.
"""

from nmt.inference.model import InferenceModel, PreparedLayer
from nmt.inference.prepare import prepare_for_inference

__all__ = ["InferenceModel", "PreparedLayer", "prepare_for_inference"]
