"""A compressed user model as an ONNX program: pruned layers physically smaller, int8 QDQ on the
layers the policy quantises (ONNX Runtime static quantisation calibrated on training images)."""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import numpy as np
import torch
from torch import nn

from autoc.compress.quant import quantize_weight
from autoc.data.preprocessing import Preprocessing
from autoc.modelspace.compress import QuantizedConv2d, QuantizedLinear
from autoc.onnx.export import export_onnx

_PLAIN = {QuantizedConv2d: nn.Conv2d, QuantizedLinear: nn.Linear}


@contextlib.contextmanager
def plain_layers(model: nn.Module) -> Iterator[list[str]]:
    """The model with its fake-quantising layers as plain ones for the duration (the exporter
    quantises them itself); yields the quantised layers' module paths."""
    swapped = [(name, module) for name, module in model.named_modules() if type(module) in _PLAIN]
    for _, module in swapped:
        module.__class__ = _PLAIN[type(module)]
    try:
        yield [name for name, _ in swapped]
    finally:
        for _, module in swapped:
            module.__class__ = QuantizedConv2d if isinstance(module, nn.Conv2d) else QuantizedLinear


def export_compressed(model: nn.Module, *, calibration: np.ndarray,
                      preprocessing: Preprocessing | None = None, int8_weights: str | None = None) -> bytes:
    """ONNX bytes of a model made by ``autoc.modelspace.compress`` (fine-tuned or not), for inputs
    shaped like ``calibration``'s images (any batch), with ``preprocessing`` in its metadata;
    ``int8_weights``: how int8 weights are stored (``autoc.onnx.int8``; None: as this host runs them)."""
    model = _snapped_low_bit_weights(model)
    with plain_layers(model) as int8:
        return export_onnx(model.eval(), input_shape=(1, *calibration.shape[1:]), int8_layers=frozenset(int8),
                           calibration=calibration, int8_weights=int8_weights,
                           metadata=preprocessing.metadata() if preprocessing is not None else None,
                           dynamic_batch=True)


def _snapped_low_bit_weights(model: nn.Module) -> nn.Module:
    """``model``, or where a quantised layer has fewer than 8 weight bits, a copy whose weights of those
    layers lie on their bit width's grid, as the fake quantiser computes with them: the exporter then
    stores them as int8 multiples of that grid's step (``autoc.onnx.export``), exactly."""
    low = [name for name, module in model.named_modules()
           if type(module) in _PLAIN and module.quant.weight_bits < 8]
    if not low:
        return model
    snapped = copy.deepcopy(model)
    with torch.no_grad():
        for name in low:
            module = snapped.get_submodule(name)
            module.weight.copy_(quantize_weight(module.weight, bits=module.quant.weight_bits))
    return snapped


def onnx_accuracy(program: bytes, inputs, labels, *, batch: int = 64) -> float:
    """Top-1 accuracy of an ONNX program in ONNX Runtime, ``batch`` images per run (the batch is dynamic)."""
    import onnxruntime as ort

    session = ort.InferenceSession(program, providers=["CPUExecutionProvider"])
    x = inputs.numpy().astype(np.float32)
    predictions = np.concatenate([session.run(None, {"input": x[i:i + batch]})[0] for i in range(0, len(x), batch)])
    return float((predictions.argmax(1) == labels.numpy()).mean())
