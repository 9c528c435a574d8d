"""Shrink a copy of a user's model to a keep ratio per channel group, keeping original channels.

Two steps, so the choice can be inspected, stored and replayed: ``choose_channels`` picks which
original channels each group keeps (by an importance callable, L1 magnitude by default);
``prune`` removes the others from a copy. The kept channels are the original ones, unchanged, so
a pruned model starts from the user's trained weights.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch_pruning as tp
from torch import nn

from autoc.errors import PolicyError
from autoc.modelspace.groups import ModelStructure, trace

# Scores one Torch-Pruning group: a 1-D tensor, one score per channel, higher = keep.
Importance = Callable[[object], torch.Tensor]


def l1_importance(group) -> torch.Tensor:
    """Mean L1 norm of each channel's weights over every layer of the group."""
    return tp.importance.GroupMagnitudeImportance(p=1, group_reduction="mean", normalizer=None)(group)


@dataclass(frozen=True)
class ChannelPlan:
    """Which original channels each pruned group keeps (ascending indices); groups not named stay whole."""

    kept: Mapping[str, tuple[int, ...]]

    def to_dict(self) -> dict[str, list[int]]:
        return {name: list(indices) for name, indices in self.kept.items()}


def choose_channels(model: nn.Module, keep: Mapping[str, float], *, example_input: torch.Tensor,
                    multiple: int = 1, importance: Importance = l1_importance) -> ChannelPlan:
    """The channels each group in ``keep`` (group name -> keep ratio) keeps: the most important
    ``round(ratio * channels)``, rounded to ``multiple``."""
    pairs = trace(model, example_input).sorted_groups()
    named = ModelStructure(groups=tuple(group for group, _ in pairs), layers=())
    counts = {name: named.group(name).kept(ratio, multiple=multiple) for name, ratio in keep.items()}
    kept = {}
    for group, tp_group in pairs:
        count = counts.get(group.name)
        if count is None or count == group.channels:
            continue
        with torch.no_grad():
            scores = importance(tp_group)
        order = torch.argsort(scores, descending=True, stable=True)[:count]
        kept[group.name] = tuple(sorted(int(i) for i in order))
    return ChannelPlan(kept=kept)


def prune(model: nn.Module, plan: ChannelPlan, *, example_input: torch.Tensor) -> nn.Module:
    """A copy of ``model`` with only the channels ``plan`` keeps; ``model`` is left as it was."""
    pruned = copy.deepcopy(model)
    remaining = dict(plan.kept)
    for group, tp_group in trace(pruned, example_input).groups():
        kept = remaining.pop(group.name, None)
        if kept is None:
            continue
        if not kept or any(not 0 <= i < group.channels for i in kept):
            raise PolicyError(f"group {group.name!r} has {group.channels} channels, the plan keeps {list(kept)[:8]}: "
                              "keep at least one index in range")
        removed = sorted(set(range(group.channels)) - set(kept))
        if removed:
            tp_group.prune(idxs=removed)
    if remaining:
        raise PolicyError(f"the model has no channel group {next(iter(remaining))!r}: the plan was made for "
                          "another model")
    return pruned.eval()
