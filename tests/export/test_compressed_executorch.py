"""A compressed user model quantised for ExecuTorch (autoc.export.compressed_executorch): int8 exactly
on the layers the policy quantises, whatever module the BatchNorm and ReLU after them belong to."""
import importlib.util

import pytest
import torch

from autoc.arch.policy import LayerPolicy
from autoc.errors import PolicyError
from autoc.export.compressed_executorch import int8_layer_bits, quantize_compressed
from autoc.latency.executorch import int8_weight_layers
from autoc.modelspace.compress import ModelPolicy, compress
from usernets import small_resnet

needs_executorch = pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                                      reason="executorch is in the dev extra: pip install -e '.[dev]'")
SHAPE = (1, 3, 16, 16)


def _mixed_model():
    """small_resnet pruned, with int8 on: a conv whose BatchNorm and ReLU are sibling modules ("4"), a
    residual conv whose ReLU is its parent's functional call ("3.conv1", 4-bit weights), one feeding a
    residual add ("7.conv2") and the classifier ("10"); the other convs fp32."""
    layers = {"4": LayerPolicy(precision="int8", weight_bits=8, act_bits=8),
              "3.conv1": LayerPolicy(precision="int8", weight_bits=4, act_bits=8),
              "7.conv2": LayerPolicy(precision="int8", weight_bits=6, act_bits=8),
              "10": LayerPolicy(precision="int8", weight_bits=8, act_bits=8)}
    model = compress(small_resnet(10).eval(), ModelPolicy.of(keep={"0": 0.5}, layers=layers),
                     example_input=torch.randn(SHAPE))
    with torch.no_grad():
        model(torch.randn(8, *SHAPE[1:]))  # the fake quantisers observe their ranges
    return model, layers


@needs_executorch
def test_only_the_policys_int8_layers_are_quantised_with_their_bits():
    model, layers = _mixed_model()
    assert int8_layer_bits(model) == {name: (p.weight_bits, p.act_bits) for name, p in sorted(layers.items())}
    graph = quantize_compressed(model, input_shape=SHAPE, calibration=torch.randn(8, *SHAPE[1:]))
    assert int8_weight_layers(graph) == set(layers)
    assert type(model.get_submodule("4")).__name__ == "QuantizedConv2d"  # the model is left fake-quantising


@needs_executorch
def test_int8_layers_the_quantizer_cannot_express_are_named(monkeypatch):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer

    patterns = [p for p in XNNPACKQuantizer.SUPPORTED_PATTERNS if not p.name.startswith("conv")]
    monkeypatch.setattr(XNNPACKQuantizer, "SUPPORTED_PATTERNS", patterns)  # a quantizer without conv patterns
    model, _ = _mixed_model()
    with pytest.raises(PolicyError, match=r"left int8 layers \['3.conv1', '4', '7.conv2'\] in fp32"):
        quantize_compressed(model, input_shape=SHAPE, calibration=torch.randn(4, *SHAPE[1:]))
