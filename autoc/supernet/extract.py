"""Sub-network extraction: a pure function from (supernet, sub-network plan) to a standalone AutocNet.

The copy owns its tensors (no views into the supernet), so fine-tuning it never changes the
supernet, and its forward pass equals the supernet's forward for the same plan.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from autoc.arch.builder import AutocNet, build_model
from autoc.arch.netspec import NetSpec
from autoc.data.datasets import resize_images

if TYPE_CHECKING:
    from autoc.supernet.elastic import Supernet


@torch.no_grad()
def extract(supernet: "Supernet", subnet: NetSpec) -> AutocNet:
    """A new AutocNet shaped as ``subnet`` holding the supernet's weights (BatchNorm running
    stats included: they are the supernet's shared ones, so recalibrate before evaluating)."""
    model = build_model(subnet)
    for conv in subnet.convs():
        slot = supernet.slot(conv.name)
        dst = model.get_submodule(conv.name)
        dst.conv.weight.copy_(slot.weight_for(conv))
        c = conv.cout
        dst.bn.weight.copy_(slot.bn_weight[:c])
        dst.bn.bias.copy_(slot.bn_bias[:c])
        dst.bn.running_mean.copy_(slot.running_mean[:c])
        dst.bn.running_var.copy_(slot.running_var[:c])
    for block in subnet.blocks:
        if block.se is not None:
            se = model.get_submodule(block.se.name)
            rw, rb, ew, eb = supernet.se_slot(block.se).weights_for(block.se)
            se.reduce.weight.copy_(rw)
            se.reduce.bias.copy_(rb)
            se.expand.weight.copy_(ew)
            se.expand.bias.copy_(eb)
    model.classifier.weight.copy_(supernet.classifier.weight[:, : subnet.classifier_in])
    model.classifier.bias.copy_(supernet.classifier.bias)
    model.train(supernet.training)
    return model


@torch.no_grad()
def calibrate_batchnorm(supernet: "Supernet", subnet: NetSpec, inputs: torch.Tensor, *, batches: int = 8,
                        batch_size: int = 64) -> None:
    """Set the supernet's running stats of ``subnet``'s channels to their average over a few batches
    of ``inputs`` at the sub-network's resolution (what ``autoc.training.loop.recalibrate_batchnorm``
    does to an extracted copy)."""
    inputs = resize_images(inputs, subnet.input_size)
    for conv in subnet.convs():
        slot = supernet.slot(conv.name)
        slot.running_mean[: conv.cout].zero_()
        slot.running_var[: conv.cout].fill_(1.0)
    was_training = supernet.training
    supernet.train()
    order = torch.randperm(inputs.shape[0], generator=torch.Generator().manual_seed(0))  # as recalibrate_batchnorm
    for i in range(min(batches, max(1, inputs.shape[0] // batch_size))):
        # momentum 1/(i+1) makes the running value the plain mean of the batches seen so far.
        batch = inputs[order[i * batch_size : (i + 1) * batch_size]]
        supernet(batch, subnet=subnet, bn_momentum=1.0 / (i + 1))
    supernet.train(was_training)
