"""NetSpec -> nn.Module. Module paths equal the layer names policies use (``stages.2.1.expand``)."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from autoc.arch.netspec import BlockSpec, ConvSpec, NetSpec, SESpec

ACTIVATIONS = {"relu6": nn.ReLU6, "relu": nn.ReLU, "hswish": nn.Hardswish}


class ConvBNAct(nn.Module):
    """Conv + BatchNorm (+ activation), with optional fake quantisation of input and weight."""

    def __init__(self, spec: ConvSpec, activation: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            spec.cin, spec.cout, spec.kernel, spec.stride, spec.kernel // 2, groups=spec.groups, bias=False
        )
        self.bn = nn.BatchNorm2d(spec.cout)
        self.act = ACTIVATIONS[activation]() if spec.act else nn.Identity()
        self.quant: nn.Module | None = None  # set by autoc.compress.quant.apply_quantization

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv.weight
        if self.quant is not None:
            x, weight = self.quant(x, weight)
        x = nn.functional.conv2d(
            x, weight, None, self.conv.stride, self.conv.padding, self.conv.dilation, self.conv.groups
        )
        x = self.act(self.bn(x))
        return self.quant.requantize(x) if self.quant is not None else x


class ChannelShuffle(nn.Module):
    """Interleaves the channels of ``groups`` groups (ShuffleNet), so the next grouped conv sees every group."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SqueezeExcite(nn.Module):
    """MobileNetV3 squeeze-excite: x * hardsigmoid(expand(relu(reduce(avgpool(x))))); convs with bias, no BN.
    Never fake-quantised: it runs fp32 whatever the block's precision."""

    def __init__(self, spec: SESpec) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(spec.channels, spec.reduced, 1)
        self.expand = nn.Conv2d(spec.reduced, spec.channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        scale = self.expand(nn.functional.relu(self.reduce(scale)))
        return x * nn.functional.hardsigmoid(scale)


class Block(nn.Module):
    """Inverted residual (expand 1x1, depthwise kxk, [squeeze-excite,] project 1x1), skip conv, or identity.

    ``activation`` defaults to the block's own (``spec.activation``)."""

    def __init__(self, spec: BlockSpec, activation: str | None = None) -> None:
        super().__init__()
        activation = activation or spec.activation
        self.residual = spec.residual
        self.layer_order: list[str] = []
        self.sum_quant: nn.Module | None = None  # set by autoc.compress.quant.apply_quantization
        for conv in spec.convs:
            short = conv.name.rsplit(".", 1)[1]
            self.add_module(short, ConvBNAct(conv, activation))
            self.layer_order.append(short)
            if short == "expand" and spec.shuffle > 1:
                self.shuffle = ChannelShuffle(spec.shuffle)
                self.layer_order.append("shuffle")
            if short == "dw" and spec.se is not None:
                self.se = SqueezeExcite(spec.se)
                self.layer_order.append("se")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for name in self.layer_order:
            out = getattr(self, name)(out)
        if not self.residual:
            return out
        first = getattr(self, self.layer_order[0]).quant if self.layer_order else None
        # an int8 runtime adds the skip as the first conv read it, on its input quantiser's grid
        skip = first.quantize(x) if first is not None else x
        out = skip + out
        return self.sum_quant(out) if self.sum_quant is not None else out


class AutocNet(nn.Module):
    """The network a NetSpec describes: stem, stages of blocks, optional head conv, global average pool
    and a linear classifier."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = ConvBNAct(spec.stem, spec.activation)
        n_stages = max((b.stage for b in spec.blocks), default=-1) + 1
        self.stages = nn.ModuleList(nn.ModuleList() for _ in range(n_stages))
        for block in spec.blocks:
            self.stages[block.stage].append(Block(block))
        self.head = ConvBNAct(spec.head, spec.activation) if spec.head is not None else None
        self.classifier = nn.Linear(spec.classifier_in, spec.num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            for block in stage:
                x = block(x)
        if self.head is not None:
            x = self.head(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


def build_model(spec: NetSpec, *, seed: int | None = None) -> AutocNet:
    """The network of ``spec``; with ``seed``, its initial weights are a function of the seed alone
    (the process-wide random state is neither read nor changed), so a run repeats bit for bit."""
    if seed is None:
        return AutocNet(spec)
    with seeded(seed):
        return AutocNet(spec)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draws inside the block come from torch's CPU generator seeded with ``seed``; its state
    outside the block is restored afterwards (whatever ran before cannot shift them)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _init_weights(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)
