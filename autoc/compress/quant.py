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

from autoc.arch.builder import AutocNet, Block, ChannelShuffle, ConvBNAct, SqueezeExcite
from autoc.arch.policy import CompressionPolicy

RUNTIME_ACT_BITS = 8  # ONNX Runtime hands activations on as uint8 whatever the policy's act_bits


class ActivationQuant(nn.Module):
    """A per-tensor affine activation quantiser whose range is observed while training (a moving
    min/max), or on first use when it never trained.

    ``added_later``: a quantiser that weights saved before it existed lack; loading such weights
    leaves it unobserved, so it observes on first use instead of refusing the file."""

    def __init__(self, *, act_bits: int, momentum: float = 0.1, added_later: bool = False) -> None:
        super().__init__()
        self.act_bits = act_bits
        self.momentum = momentum
        self.added_later = added_later
        self.register_buffer("act_min", torch.zeros(()))
        self.register_buffer("act_max", torch.zeros(()))
        self.register_buffer("observed", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.export (autoc export --format pt2) traces a calibrated quantiser as it is: its frozen
        # range, no data-dependent branch (the exporter checks every quantiser has observed).
        exporting = torch.compiler.is_exporting()
        if not exporting and (self.training or not bool(self.observed)):  # an untrained one calibrates on first use
            self._observe(x.detach())
        return self.quantize(x)

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        if self.added_later and not any(key.startswith(prefix) for key in state_dict):
            return  # weights from before this quantiser existed: it stays unobserved
        super()._load_from_state_dict(state_dict, prefix, *args)

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

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on this quantiser's grid (unchanged while it has no range); no observation."""
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


class FakeQuant(ActivationQuant):
    """A layer's quantiser: fake-quantises its input activations (range observed while training, or on
    first use) and its weights (per channel) to the policy's bits.

    ``output`` (set by :func:`apply_quantization`): the quantiser of the layer's output where an int8
    runtime requantises it and no int8 conv's input quantiser does (the output feeds a residual Add,
    an fp32 layer or the pooling); None elsewhere."""

    def __init__(self, *, weight_bits: int, act_bits: int, momentum: float = 0.1) -> None:
        super().__init__(act_bits=act_bits, momentum=momentum)
        self.weight_bits = weight_bits
        self.output: ActivationQuant | None = None

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return super().forward(x), quantize_weight(weight, bits=self.weight_bits)

    def requantize(self, y: torch.Tensor) -> torch.Tensor:
        """The layer's output ``y`` as the int8 runtime hands it on (see ``output``)."""
        return y if self.output is None else self.output(y)


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
    """Attach fake quantisers to every conv whose policy precision is not fp32 (in place); in an
    AutocNet, also where an int8 runtime requantises a tensor that no conv's input quantiser covers."""
    for name, module in model.named_modules():
        if isinstance(module, ConvBNAct):
            layer = policy.get(name)
            module.quant = (
                FakeQuant(weight_bits=layer.weight_bits, act_bits=layer.act_bits) if layer.quantized else None
            )
    if isinstance(model, AutocNet):
        _requantise_as_runtime(model)
    return model


def _requantise_as_runtime(model: AutocNet) -> None:
    """ONNX Runtime (QDQ) quantises every output of an int8 conv and of an int8 residual Add, once
    per tensor: where an int8 conv reads the tensor next, its input quantiser is that quantisation;
    elsewhere the producer gets an output quantiser of its own."""
    stations = _stations(model)
    for here, after in zip(stations, stations[1:]):
        covered = isinstance(after, ConvBNAct) and after.quant is not None
        if isinstance(here, ConvBNAct) and isinstance(here.quant, FakeQuant):
            here.quant.output = None if covered else ActivationQuant(act_bits=RUNTIME_ACT_BITS, added_later=True)
        elif isinstance(here, Block):
            here.sum_quant = None if covered or not _int8_add(here) else \
                ActivationQuant(act_bits=RUNTIME_ACT_BITS, added_later=True)


def _stations(model: AutocNet) -> list[nn.Module | None]:
    """What data passes through, in order: conv layers, residual blocks (their Add), and None for an
    op that runs fp32 (squeeze-excite, the pooling and classifier); a channel shuffle only moves values."""
    stations: list[nn.Module | None] = [model.stem]
    for stage in model.stages:
        for block in stage:
            for name in block.layer_order:
                module = getattr(block, name)
                if isinstance(module, ConvBNAct):
                    stations.append(module)
                elif isinstance(module, SqueezeExcite):
                    stations.append(None)
            if block.residual:
                stations.append(block)
    if model.head is not None:
        stations.append(model.head)
    return stations + [None]


def _int8_add(block: Block) -> bool:
    """The exporter runs a block's Add int8 when every conv of the block is (squeeze-excite never is)."""
    layers = [getattr(block, name) for name in block.layer_order]
    return all(isinstance(m, ConvBNAct) and m.quant is not None or isinstance(m, ChannelShuffle) for m in layers)


def missing_ranges(model: nn.Module) -> bool:
    """Whether a trained model has quantisers that never observed (its weights predate them); a model
    built only to be timed, with no quantiser observed, has none missing."""
    observed = [bool(m.observed) for m in model.modules() if isinstance(m, ActivationQuant)]
    return any(observed) and not all(observed)


@torch.no_grad()
def observe_missing_ranges(model: nn.Module, images: torch.Tensor) -> None:
    """Quantisers that never observed take their ranges from ``images`` (one batch, in eval mode, so
    the quantisers that did observe keep theirs)."""
    if not missing_ranges(model):
        return
    was_training = model.training
    model.eval()
    try:
        model(images)
    finally:
        model.train(was_training)


@contextlib.contextmanager
def without_fake_quant(model: nn.Module) -> Iterator[None]:
    """Detach fake quantisers for the duration (export and tracing need the plain fp32 graph)."""
    detached = [(m, attr, getattr(m, attr)) for m in model.modules()
                for attr in ("quant", "sum_quant") if getattr(m, attr, None) is not None
                and isinstance(m, (ConvBNAct, Block))]
    for module, attr, _ in detached:
        setattr(module, attr, None)
    try:
        yield
    finally:
        for module, attr, quant in detached:
            setattr(module, attr, quant)
