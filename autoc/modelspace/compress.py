"""Apply a compression policy to a user's model: prune channel groups, zero weights, fake-quantise.

The policy keeps a ratio per channel group (``autoc.modelspace.groups``) and a precision, weight
bits and sparsity per conv/linear layer (``autoc.arch.policy.LayerPolicy``, named by module
path). Quantised layers keep their module path and parameters: only their class changes, to one
that fake-quantises its input and weights, so state dicts and policies keep naming the same layers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from autoc.arch.policy import CompressionPolicy
from autoc.compress.quant import RUNTIME_ACT_BITS, ActivationQuant, FakeQuant
from autoc.compress.sparsity import apply_sparsity
from autoc.errors import PolicyError
from autoc.modelspace.prune import Importance, choose_channels, l1_importance, prune


@dataclass(frozen=True)
class ModelPolicy:
    """Keep ratio per channel group and LayerPolicy per weight layer; what is not named stays as it is."""

    keep: tuple[tuple[str, float], ...] = ()
    layers: CompressionPolicy = field(default_factory=CompressionPolicy)
    multiple: int = 1  # channel counts are rounded to a multiple of this

    @classmethod
    def of(cls, *, keep: Mapping[str, float] | None = None, layers: Mapping | None = None,
           multiple: int = 1) -> "ModelPolicy":
        return cls(keep=tuple(sorted((keep or {}).items())),
                   layers=CompressionPolicy.from_mapping(layers or {}), multiple=multiple)

    def __post_init__(self) -> None:
        for name, layer in self.layers.layers:
            if layer.keep_ratio != 1.0:
                raise PolicyError(f"layer {name!r} has keep_ratio {layer.keep_ratio}: a user's model keeps channels "
                                  "per channel group, so give the ratio in keep={group: ratio}")


class QuantizedConv2d(nn.Conv2d):
    """A Conv2d that fake-quantises its input (per tensor) and weights (per output channel)."""

    quant: FakeQuant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = self.quant(x, self.weight)
        return self._conv_forward(x, weight, self.bias)


class QuantizedLinear(nn.Linear):
    """A Linear that fake-quantises its input (per tensor) and weights (per output feature), and its
    output as ONNX Runtime requantises a QDQ Gemm's output (``quant.output``, uint8 per tensor; the
    export gives that tensor the range observed here)."""

    quant: FakeQuant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = self.quant(x, self.weight)
        return self.quant.requantize(nn.functional.linear(x, weight, self.bias))


_QUANTIZED = {nn.Conv2d: QuantizedConv2d, nn.Linear: QuantizedLinear}


def compress(model: nn.Module, policy: ModelPolicy, *, example_input: torch.Tensor,
             importance: Importance = l1_importance) -> nn.Module:
    """A compressed copy of ``model``: pruned, sparse and fake-quantised as ``policy`` says.

    ``model`` is left as it was. The copy trains like any module (quantisers pass gradients
    straight through; zeroed weights stay zero)::

        small = compress(model, ModelPolicy.of(keep={"layer1.0.conv1": 0.5},
                                               layers={"fc": LayerPolicy(precision="int8", weight_bits=8, act_bits=8)}),
                         example_input=torch.randn(1, 3, 224, 224))
    """
    plan = choose_channels(model, dict(policy.keep), example_input=example_input, multiple=policy.multiple,
                           importance=importance)
    compressed = prune(model, plan, example_input=example_input)
    layers = {name: module for name, module in compressed.named_modules() if type(module) in _QUANTIZED}
    unknown = [name for name, _ in policy.layers.layers if name not in layers]
    if unknown:
        raise PolicyError(f"the policy names layer {unknown[0]!r}, which is not a conv or linear layer of the model: "
                          f"use names such as {', '.join(list(layers)[:3])}")
    apply_sparsity(compressed, {name: layer.sparsity for name, layer in policy.layers.layers}, layers=layers)
    for name, layer in policy.layers.layers:
        if layer.quantized:
            module = layers[name]
            module.__class__ = _QUANTIZED[type(module)]
            module.quant = FakeQuant(weight_bits=layer.weight_bits, act_bits=layer.act_bits)
            if isinstance(module, nn.Linear):  # a conv's output is requantised after its folded BatchNorm
                module.quant.output = ActivationQuant(act_bits=RUNTIME_ACT_BITS, added_later=True)
    return compressed.eval()


def quantized_layers(model: nn.Module) -> dict[str, FakeQuant]:
    """The fake quantiser of every quantised layer, by module path."""
    return {name: module.quant for name, module in model.named_modules()
            if isinstance(module, (QuantizedConv2d, QuantizedLinear))}

