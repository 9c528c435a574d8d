"""Channel importance sorting: put each channel group's most used channels first.

Sub-networks take the first ``k`` channels of every slot (``autoc.supernet.elastic``). After
the largest network has trained alone, its channel order is arbitrary, so a narrow
sub-network would inherit whichever channels happen to come first. Once-for-All reorders
channels by importance before it trains elastic widths; this does the same once, between the
largest-only stage and the sandwich stage.

A channel group (``ConvSpec.in_group`` / ``out_group``: the tensor a residual sum or a
depthwise conv ties together) is permuted as one: the output rows, BatchNorm parameters and
running statistics of every conv writing it, and the input columns of every conv (and the
classifier) reading it. The largest network computes exactly the same function afterwards.
A channel's importance is the L1 norm of the weights that read it downstream.
"""
from __future__ import annotations

from collections import defaultdict

import torch

from autoc.arch.netspec import ConvSpec
from autoc.supernet.elastic import Supernet


@torch.no_grad()
def sort_channels_by_importance(supernet: Supernet) -> list[str]:
    """Reorder ``supernet``'s channel groups in place, most important channels first; returns the
    names of the groups reordered. Groups that grouped convs or channel shuffles read or write
    keep their order (a permutation would break their block structure); with skip-conv slots
    (which carry no group names) only block-internal hidden groups are reordered."""
    full = supernet.largest_subnet()
    convs = list(full.convs())
    writers: dict[str, list[ConvSpec]] = defaultdict(list)
    readers: dict[str, list[ConvSpec]] = defaultdict(list)
    for conv in convs:
        writers[conv.out_group].append(conv)
        if not conv.depthwise:  # a depthwise conv reads and writes the same channels: a writer only
            readers[conv.in_group].append(conv)
    frozen = {"input"} | _fixed_groups(full)
    has_skip_slots = len(supernet.slots) > len(convs)
    reordered = []
    for group, group_writers in writers.items():
        if group in frozen or (has_skip_slots and not group.endswith(".hidden")):
            continue
        classifier = group == full.classifier_group
        importance = _importance(supernet, readers[group], classifier=classifier)
        if importance is None:
            continue
        order = torch.argsort(importance, descending=True, stable=True)
        _permute(supernet, order, writers=group_writers, readers=readers[group], classifier=classifier)
        reordered.append(group)
    return reordered


def _fixed_groups(full) -> set[str]:
    fixed = set()
    for block in full.blocks:
        for conv in block.convs:
            if conv.grouped or block.shuffle > 1:
                fixed |= {conv.in_group, conv.out_group}
    return fixed


def _importance(supernet: Supernet, readers: list[ConvSpec], *, classifier: bool) -> torch.Tensor | None:
    total = None
    for conv in readers:
        weight = supernet.slot(conv.name).weight  # [cout, cin, k, k] at the slot's largest shape
        part = weight.abs().sum(dim=(0, 2, 3))
        total = part if total is None else total + part
    if classifier:
        part = supernet.classifier.weight.abs().sum(dim=0)
        total = part if total is None else total + part
    return total


def _permute(supernet: Supernet, order: torch.Tensor, *, writers: list[ConvSpec], readers: list[ConvSpec],
             classifier: bool) -> None:
    for conv in writers:
        slot = supernet.slot(conv.name)
        for tensor in (slot.weight, slot.bn_weight, slot.bn_bias, slot.running_mean, slot.running_var):
            tensor.copy_(tensor[order])
    for conv in readers:
        weight = supernet.slot(conv.name).weight
        weight.copy_(weight[:, order])
    if classifier:
        supernet.classifier.weight.copy_(supernet.classifier.weight[:, order])
