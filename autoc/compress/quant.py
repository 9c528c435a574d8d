"""Per-layer fake quantisation: per-channel symmetric weights, per-tensor affine activations.

Gradients pass straight through (the STE of torch's fake_quantize ops), so a quantised
network can be fine-tuned. Per-channel weight scales make quantising before or after
folding BatchNorm equivalent, so what we train matches what an int8 runtime executes.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from autoc.arch.builder import ConvBNAct
from autoc.arch.policy import CompressionPolicy


class FakeQuant(nn.Module):
    """A layer's quantiser: fake-quantises its input activations (range observed while training, or on
    first use) and its weights (per channel) to the policy's bits."""

    def __init__(self, *, weight_bits: int, act_bits: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.weight_bits = weight_bits
        self.act_bits = act_bits
        self.momentum = momentum
        self.register_buffer("act_min", torch.zeros(()))
        self.register_buffer("act_max", torch.zeros(()))
        self.register_buffer("observed", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # torch.export (autoc export --format pt2) traces a calibrated quantiser as it is: its frozen
        # range, no data-dependent branch (the exporter checks every quantiser has observed).
        exporting = torch.compiler.is_exporting()
        if not exporting and (self.training or not bool(self.observed)):  # an untrained one calibrates on first use
            self._observe(x.detach())
        return self._quantize_activation(x), quantize_weight(weight, bits=self.weight_bits)

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        lo, hi = torch.aminmax(_dense_view(x))
        if not bool(self.observed):
            self.act_min.copy_(lo)
            self.act_max.copy_(hi)
            self.observed.fill_(True)
        else:
            self.act_min.lerp_(lo, self.momentum)
            self.act_max.lerp_(hi, self.momentum)

    def _quantize_activation(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_exporting() and not bool(self.observed):
            return x
        qmax = 2**self.act_bits - 1
        lo = torch.clamp(self.act_min, max=0.0)  # the range must contain zero exactly
        hi = torch.clamp(self.act_max, min=0.0)
        scale = torch.clamp((hi - lo) / qmax, min=1e-8).reshape(1)
        zero_point = torch.clamp(torch.round(-lo / scale), 0, qmax).to(torch.int32).reshape(1)
        if torch.compiler.is_exporting():
            # torch.export cannot trace the fake-quantise ops with tensor scale and zero point; this is
            # their arithmetic (float32, rounding half to even), so it computes the same values.
            zero = zero_point.to(x.dtype)
            return (torch.clamp(torch.round(x * (1.0 / scale)) + zero, 0, qmax) - zero) * scale
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, qmax)


def _dense_view(x: torch.Tensor) -> torch.Tensor:
    """The same elements in a contiguous view: a channels-last activation reduced as it is would
    first be copied to the default layout (a full copy per quantised layer and training step)."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1)
    return x


def quantize_weight(weight: torch.Tensor, *, bits: int) -> torch.Tensor:
    """Symmetric per-output-channel fake quantisation with a straight-through gradient."""
    qmax = 2 ** (bits - 1) - 1
    scale = torch.clamp(weight.detach().abs().flatten(1).amax(1) / qmax, min=1e-8)
    zero_point = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -qmax, qmax)


def apply_quantization(model: nn.Module, policy: CompressionPolicy) -> nn.Module:
    """Attach fake quantisers to every conv whose policy precision is not fp32 (in place)."""
    for name, module in model.named_modules():
        if isinstance(module, ConvBNAct):
            layer = policy.get(name)
            module.quant = (
                FakeQuant(weight_bits=layer.weight_bits, act_bits=layer.act_bits) if layer.quantized else None
            )
    return model


@contextlib.contextmanager
def without_fake_quant(model: nn.Module) -> Iterator[None]:
    """Detach fake quantisers for the duration (export and tracing need the plain fp32 graph)."""
    detached = [(m, m.quant) for m in model.modules() if isinstance(m, ConvBNAct) and m.quant is not None]
    for module, _ in detached:
        module.quant = None
    try:
        yield
    finally:
        for module, quant in detached:
            module.quant = quant
