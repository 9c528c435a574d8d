"""The elastic supernet: one bank of weights holding every sub-network of a search space.

A sub-network is described by its pruned ``NetSpec`` (``candidate.netspec()``): depth is the
blocks it lists (the first ``d`` of each stage), width and channel keep are its channel
counts (the first ``k`` channels of each slot), kernel size its depthwise kernels, expansion
its hidden widths. The forward pass takes the sub-network as an argument and slices the
weights on every call, so gradients reach the shared weights and no "active sub-network"
state exists (unlike Once-for-All's ``set_active_subnet``).

Smaller depthwise kernels come from the larger one through a learned kernel transform, as
in Once-for-All: the centre crop of the 7x7 kernel, multiplied by a 25x25 matrix shared by
all channels of the layer, gives the 5x5 kernel; its centre crop times a 9x9 matrix gives
the 3x3. The matrices start as identities (plain centre crop).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from autoc.arch.builder import AutocNet
from autoc.arch.config import ArchConfig
from autoc.arch.netspec import ConvSpec, NetSpec, SESpec, build_netspec
from autoc.candidate import Candidate
from autoc.data.datasets import resize_images
from autoc.errors import PolicyError
from autoc.training.loop import recalibrate_batchnorm
from autoc.supernet.extract import extract

ACTIVATIONS = {"relu6": F.relu6, "relu": F.relu, "hswish": F.hardswish}  # the functional twins of autoc.arch.builder's
BN_EPS = 1e-5
BN_MOMENTUM = 0.1


class ElasticConv(nn.Module):
    """Conv weight + BatchNorm of one layer slot at its largest shape; sliced per call."""

    def __init__(self, slot: ConvSpec) -> None:
        super().__init__()
        self.slot = slot
        self.depthwise = slot.depthwise
        cin = 1 if self.depthwise else slot.cin
        self.weight = nn.Parameter(torch.empty(slot.cout, cin, slot.kernel, slot.kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.bn_weight = nn.Parameter(torch.ones(slot.cout))
        self.bn_bias = nn.Parameter(torch.zeros(slot.cout))
        self.register_buffer("running_mean", torch.zeros(slot.cout))
        self.register_buffer("running_var", torch.ones(slot.cout))
        # transforms[i] maps kernel size K-2i to K-2i-2 (centre crop, then this matrix).
        sizes = range(slot.kernel - 2, 2, -2) if self.depthwise else ()
        self.transforms = nn.ParameterList(nn.Parameter(torch.eye(k * k)) for k in sizes)

    def weight_for(self, conv: ConvSpec) -> torch.Tensor:
        """The weight tensor ``conv`` (a slice of this slot) uses: shape of ``nn.Conv2d`` weight."""
        self._check_fits(conv)
        weight = self._kernel(conv.kernel)
        if self.depthwise or conv.depthwise:
            return weight[: conv.cout, :1]
        if conv.groups == 1:
            return weight[: conv.cout, : conv.cin]
        # A grouped conv takes the block diagonal of the dense slot, one block per group.
        out_g, in_g = conv.cout // conv.groups, conv.cin // conv.groups
        return torch.cat(
            [weight[g * out_g : (g + 1) * out_g, g * in_g : (g + 1) * in_g] for g in range(conv.groups)]
        )

    def batch_norm(self, x: torch.Tensor, *, training: bool, momentum: float = BN_MOMENTUM) -> torch.Tensor:
        c = x.shape[1]
        # Slices of the buffers are views: batch statistics update the shared running stats in place.
        return F.batch_norm(
            x, self.running_mean[:c], self.running_var[:c], self.bn_weight[:c], self.bn_bias[:c],
            training=training, momentum=momentum, eps=BN_EPS,
        )

    def _kernel(self, kernel: int) -> torch.Tensor:
        weight, size = self.weight, self.slot.kernel
        step = 0
        while size > kernel:
            inner = size - 2
            crop = weight[:, :, 1 : 1 + inner, 1 : 1 + inner]
            flat = crop.reshape(crop.shape[0], crop.shape[1], inner * inner)
            weight = (flat @ self.transforms[step]).reshape(crop.shape)
            size, step = inner, step + 1
        return weight

    def _check_fits(self, conv: ConvSpec) -> None:
        slot = self.slot
        if conv.cout > slot.cout or conv.cin > slot.cin or conv.kernel > slot.kernel or conv.kernel % 2 == 0:
            raise PolicyError(
                f"layer {conv.name!r} ({conv.cin}->{conv.cout}, k{conv.kernel}) does not fit the supernet's slot "
                f"({slot.cin}->{slot.cout}, k{slot.kernel}); the candidate comes from another search space, "
                "so train a supernet for that space"
            )


class ElasticSE(nn.Module):
    """Squeeze-excite weights of one block slot at its largest shape (hidden ``channels``, ``reduced``);
    a sub-network's SE takes the first channels of both."""

    def __init__(self, slot: SESpec) -> None:
        super().__init__()
        self.slot = slot
        reduce, expand = nn.Conv2d(slot.channels, slot.reduced, 1), nn.Conv2d(slot.reduced, slot.channels, 1)
        nn.init.kaiming_normal_(reduce.weight, mode="fan_out")
        nn.init.kaiming_normal_(expand.weight, mode="fan_out")
        self.reduce_weight, self.reduce_bias = reduce.weight, reduce.bias
        self.expand_weight, self.expand_bias = expand.weight, expand.bias

    def weights_for(self, se: SESpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reduce weight, reduce bias, expand weight, expand bias) of ``se``, a slice of this slot."""
        c, r = se.channels, se.reduced
        if c > self.slot.channels or r > self.slot.reduced:
            raise PolicyError(
                f"squeeze-excite {se.name!r} ({c}->{r}) does not fit the supernet's slot "
                f"({self.slot.channels}->{self.slot.reduced}); train a supernet for that space"
            )
        return (self.reduce_weight[:r, :c], self.reduce_bias[:r],
                self.expand_weight[:c, :r], self.expand_bias[:c])

    def forward(self, x: torch.Tensor, se: SESpec) -> torch.Tensor:
        rw, rb, ew, eb = self.weights_for(se)
        scale = F.conv2d(F.relu(F.conv2d(F.adaptive_avg_pool2d(x, 1), rw, rb)), ew, eb)
        return x * F.hardsigmoid(scale)


def _slot_key(name: str) -> str:
    return name.replace(".", "__")  # module names may not contain dots


class Supernet(nn.Module):
    """Weights of the largest network of a space (``arch``), plus skip-conv slots; see the module doc."""

    def __init__(self, arch: ArchConfig, *, extra_slots: tuple[ConvSpec, ...] = ()) -> None:
        super().__init__()
        self.arch = arch
        self.activation = arch.activation
        full = build_netspec(arch)
        slots = list(full.convs()) + [s for s in extra_slots if s.name not in set(full.layer_names())]
        self.slots = nn.ModuleDict({_slot_key(s.name): ElasticConv(s) for s in slots})
        se_slots = {_slot_key(b.se.name): ElasticSE(b.se) for b in full.blocks if b.se is not None}
        if se_slots:  # only then: supernets of spaces without SE keep their state-dict keys
            self.se_slots = nn.ModuleDict(se_slots)
        self.classifier = nn.Linear(full.classifier_in, arch.num_classes)
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    @property
    def num_classes(self) -> int:
        return self.arch.num_classes

    def largest_subnet(self) -> NetSpec:
        return build_netspec(self.arch)

    def extract(self, candidate: Candidate | NetSpec, *, calibration: torch.Tensor | None = None) -> AutocNet:
        """A standalone copy of the candidate's sub-network (its pruned plan); with ``calibration``
        inputs, its BatchNorm statistics are re-estimated on them, resized to the sub-network's
        resolution (the supernet's are shared by all sub-networks and resolutions, so an
        uncalibrated copy is only fit for further training)."""
        subnet = candidate.netspec() if isinstance(candidate, Candidate) else candidate
        model = extract(self, subnet)
        if calibration is not None:
            recalibrate_batchnorm(model, resize_images(calibration, subnet.input_size))
            model.eval()
        return model

    def largest(self, *, calibration: torch.Tensor | None = None) -> AutocNet:
        """The largest sub-network as a standalone model: the distillation teacher."""
        return self.extract(self.largest_subnet(), calibration=calibration)

    def slot(self, name: str) -> ElasticConv:
        key = _slot_key(name)
        if key not in self.slots:
            raise PolicyError(
                f"layer {name!r} has no weights in the supernet (its largest network lacks it); "
                "the candidate comes from another search space, so train a supernet for that space"
            )
        return self.slots[key]

    def se_slot(self, se: SESpec) -> ElasticSE:
        slots = getattr(self, "se_slots", None)
        if slots is None or _slot_key(se.name) not in slots:
            raise PolicyError(
                f"squeeze-excite {se.name!r} has no weights in the supernet (its largest network lacks it); "
                "the candidate comes from another search space, so train a supernet for that space"
            )
        return slots[_slot_key(se.name)]

    def forward(self, x: torch.Tensor, *, subnet: NetSpec, bn_momentum: float = BN_MOMENTUM) -> torch.Tensor:
        """Logits of sub-network ``subnet`` on ``x``; BatchNorm uses batch statistics in training mode."""
        if subnet.num_classes != self.num_classes or subnet.classifier_in > self.classifier.in_features:
            raise PolicyError(
                f"sub-network with {subnet.num_classes} classes and {subnet.classifier_in} features does not fit the "
                f"supernet ({self.num_classes} classes, {self.classifier.in_features} features); "
                "train a supernet for this dataset and space"
            )
        def run(conv: ConvSpec, h: torch.Tensor, activation: str = subnet.activation) -> torch.Tensor:
            return self._conv(conv, h, activation, momentum=bn_momentum)

        # Channels-last keeps every layer in that layout: CPU depthwise-conv backward (most of a
        # training step) runs ~4x faster in it than in NCHW, with the same math.
        x = run(subnet.stem, x.contiguous(memory_format=torch.channels_last))
        for block in subnet.blocks:
            out = x
            for conv in block.convs:
                out = run(conv, out, block.activation)
                if block.se is not None and conv.name.endswith(".dw"):
                    out = self.se_slot(block.se)(out, block.se)
                if block.shuffle > 1 and conv.name.endswith(".expand"):
                    n, c, h, w = out.shape
                    out = out.view(n, block.shuffle, c // block.shuffle, h, w).transpose(1, 2).reshape(n, c, h, w)
            x = x + out if block.residual else out
        if subnet.head is not None:
            x = run(subnet.head, x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.linear(x, self.classifier.weight[:, : subnet.classifier_in], self.classifier.bias)

    def _conv(self, conv: ConvSpec, x: torch.Tensor, activation: str, *, momentum: float) -> torch.Tensor:
        slot = self.slot(conv.name)
        x = F.conv2d(x, slot.weight_for(conv), None, conv.stride, conv.kernel // 2, 1, conv.groups)
        x = slot.batch_norm(x, training=self.training, momentum=momentum)
        return ACTIVATIONS[activation](x) if conv.act else x
