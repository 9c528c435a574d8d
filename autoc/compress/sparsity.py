"""Unstructured magnitude pruning: zero the smallest weights of each conv layer.

Sparsity is chosen per layer (``LayerPolicy.sparsity``), by one global magnitude threshold,
or guided by sensitivity (how much accuracy each layer loses when pruned alone). Zeroed
weights stay zero through fine-tuning: their gradient is masked, so SGD (with momentum and
weight decay) never moves them. Sparsity saves storage (``autoc.evaluate.metrics.size_bytes``
counts non-zeros plus a one-bit-per-weight mask); it leaves latency unchanged, because dense
CPU kernels do the same work on zeros, unless a device profile declares sparse kernels.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from autoc.arch.builder import ConvBNAct
from autoc.arch.policy import CompressionPolicy
from autoc.errors import PolicyError

DEFAULT_LEVELS = (0.25, 0.5, 0.75, 0.9)


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """Layer name (as in policies) -> its conv, in network order."""
    return {name: m.conv for name, m in model.named_modules() if isinstance(m, ConvBNAct)}


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean mask keeping all but the ``round(sparsity * n)`` smallest-magnitude weights."""
    _check_fraction(sparsity, what="sparsity")
    n_zero = int(round(sparsity * weight.numel()))
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    if n_zero:
        mask[torch.argsort(weight.detach().abs().flatten(), stable=True)[:n_zero]] = False
    return mask.view_as(weight)


@torch.no_grad()
def apply_sparsity(model: nn.Module, sparsities: Mapping[str, float], *,
                   layers: Mapping[str, nn.Module] | None = None) -> dict[str, torch.Tensor]:
    """Zero each named layer's smallest weights in place and keep them zero during training.

    ``layers`` maps the names sparsities use to the layers holding the weights (default: an
    autoc network's convs by policy name)."""
    convs = conv_layers(model) if layers is None else layers
    unknown = sorted(set(sparsities) - set(convs))
    if unknown:
        raise PolicyError(f"sparsity names layers the model lacks: {unknown[:3]}; use names such as {list(convs)[:3]}")
    masks = {}
    for name, s in sparsities.items():
        if s <= 0.0:
            continue
        weight = convs[name].weight
        mask = magnitude_mask(weight, s)
        weight.mul_(mask)
        weight.register_hook(lambda grad, m=mask: grad * m.to(grad.device))  # the model may train on a GPU
        masks[name] = mask
    return masks


def apply_policy_sparsity(model: nn.Module, policy: CompressionPolicy) -> dict[str, torch.Tensor]:
    """``apply_sparsity`` with the sparsity each layer's policy asks for."""
    return apply_sparsity(model, {name: policy.get(name).sparsity for name in conv_layers(model)})


def with_sparsity(policy: CompressionPolicy, sparsities: Mapping[str, float]) -> CompressionPolicy:
    """The policy with these per-layer sparsities recorded (other fields unchanged)."""
    layers = dict(policy.layers)
    for name, s in sparsities.items():
        layers[name] = replace(policy.get(name), sparsity=float(s))
    return CompressionPolicy.from_mapping(layers)


def global_sparsities(model: nn.Module, target: float) -> dict[str, float]:
    """Per-layer sparsity that one magnitude threshold over all conv weights gives, zeroing ``target`` of them."""
    _check_fraction(target, what="target sparsity")
    convs = conv_layers(model)
    magnitudes = torch.cat([c.weight.detach().abs().flatten() for c in convs.values()])
    n_zero = int(round(target * magnitudes.numel()))
    if n_zero == 0:
        return {name: 0.0 for name in convs}
    # Rank-based split so ties at the threshold are cut exactly where the target says.
    order = torch.argsort(magnitudes, stable=True)
    zeroed = torch.zeros(magnitudes.numel(), dtype=torch.bool)
    zeroed[order[:n_zero]] = True
    out, start = {}, 0
    for name, conv in convs.items():
        n = conv.weight.numel()
        out[name] = float(zeroed[start : start + n].sum()) / n
        start += n
    return out


@torch.no_grad()
def sensitivity_sparsities(
    model: nn.Module,
    evaluate: Callable[[nn.Module], float],
    target: float,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
) -> dict[str, float]:
    """Per-layer sparsity reaching ``target`` overall where it costs least accuracy.

    ``evaluate(model)`` returns accuracy on a small validation batch. Each layer is pruned
    alone at each level to measure its drop; then, greedily, the step (one layer to its
    next level) with the smallest drop per zeroed weight is taken until ``target`` of all
    conv weights are zero (or every layer is at the top level).
    """
    _check_fraction(target, what="target sparsity")
    convs = conv_layers(model)
    base = evaluate(model)
    drop: dict[tuple[str, float], float] = {}
    for name, conv in convs.items():
        original = conv.weight.detach().clone()
        for level in levels:
            conv.weight.mul_(magnitude_mask(original, level))
            drop[name, level] = max(0.0, base - evaluate(model))
            conv.weight.copy_(original)
    sizes = {name: conv.weight.numel() for name, conv in convs.items()}
    goal = target * sum(sizes.values())
    chosen = {name: 0.0 for name in convs}
    zeroed = 0.0
    ladder = (0.0, *sorted(levels))
    while zeroed < goal:
        steps = []
        for name, current in chosen.items():
            i = ladder.index(current)
            if i + 1 < len(ladder):
                nxt = ladder[i + 1]
                gained = (nxt - current) * sizes[name]
                cost = drop[name, nxt] - (drop[name, current] if current else 0.0)
                steps.append((max(cost, 0.0) / gained, -gained, name, nxt))
        if not steps:
            break
        _, neg_gain, name, nxt = min(steps)
        chosen[name] = nxt
        zeroed -= neg_gain
    return chosen


def measured_sparsity(model: nn.Module) -> float:
    """Share of conv weights that are exactly zero."""
    convs = conv_layers(model).values()
    total = sum(c.weight.numel() for c in convs)
    zeros = sum(int((c.weight == 0).sum()) for c in convs)
    return zeros / max(1, total)


def _check_fraction(value: float, *, what: str) -> None:
    if not 0.0 <= value < 1.0:
        raise PolicyError(f"{what} {value} is outside [0, 1); use e.g. 0.5")
