"""Model cost figures: parameters and MACs (fvcore), and storage size under a policy."""
from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from autoc.arch.netspec import NetSpec
from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.compress.quant import without_fake_quant

BYTES_FP32 = 4


def params_and_macs(model: nn.Module, *, input_size: int, in_channels: int = 3) -> tuple[int, int]:
    """Parameter count and multiply-accumulates of one forward pass at batch 1 (fvcore counts a MAC as one flop)."""
    with warnings.catch_warnings():  # fvcore scripts a loss at import with torch.jit.script, which torch deprecates
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis, parameter_count

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    was_training = model.training
    model.eval()
    x = torch.zeros(1, in_channels, input_size, input_size)
    with without_fake_quant(model):  # MACs do not depend on precision; quantisers mutate state when traced
        analysis = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        macs = int(analysis.total())
    params = int(parameter_count(model)[""])
    model.train(was_training)
    return params, macs


def size_bytes(spec: NetSpec, policy: CompressionPolicy) -> int:
    """Bytes to store the deployed model: conv weights at their bit width (packed), BatchNorm
    folded into a fp32 bias per channel, classifier in fp32.

    A layer with ``sparsity`` s stores its non-zero weights plus a one-bit-per-weight mask
    (bitmap encoding): n * (1 - s) * bits + n bits, or its dense cost if that is smaller."""
    bits = 0
    for conv in spec.convs():
        weights = conv.cout * (conv.cin // conv.groups) * conv.kernel * conv.kernel
        bits += layer_storage_bits(weights, outputs=conv.cout, layer=policy.get(conv.name))
    bits += sum(block.se.params() for block in spec.blocks if block.se is not None) * 32  # SE stays fp32
    bits += (spec.classifier_in * spec.num_classes + spec.num_classes) * 32
    return (bits + 7) // 8


def layer_storage_bits(weights: int, *, outputs: int, layer: LayerPolicy) -> int:
    """Bits to store one conv or linear layer of ``weights`` weights and ``outputs`` outputs under
    ``layer``: its weights at their bit width (``weight_storage_bits``) and a fp32 bias per output
    (a BatchNorm after it folds into that bias). The one definition of a layer's size, for autoc's
    own networks (``size_bytes``) and for a user's compressed model (``autoc.modelspace.latency``)."""
    return weight_storage_bits(weights, bits=layer.weight_bits, sparsity=layer.sparsity) + outputs * 32


def weight_storage_bits(weights: int, *, bits: int, sparsity: float) -> int:
    """Bits to store ``weights`` weights of ``bits`` bits: dense, or the non-zero ones plus a one-bit
    mask per weight when pruned to ``sparsity``, whichever is smaller."""
    dense = weights * bits
    if sparsity <= 0.0:
        return dense
    nonzero = weights - int(round(sparsity * weights))
    return min(dense, nonzero * bits + weights)


def spec_macs(spec: NetSpec) -> int:
    """Multiply-accumulates of the convs (squeeze-excite's included) and the classifier, counted from
    the plan (no tracing)."""
    macs = sum(_conv_macs(conv, resolution) for conv, resolution in spec.conv_resolutions())
    macs += sum(block.se.macs() for block in spec.blocks if block.se is not None)
    return macs + spec.classifier_in * spec.num_classes


def _conv_macs(conv, resolution: int) -> int:
    return conv.cout * (conv.cin // conv.groups) * conv.kernel**2 * resolution**2
