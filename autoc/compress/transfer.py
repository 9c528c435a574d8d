"""Move weights between networks of one family: inheritance from a larger net, and pruning.

Both are pure functions of (source, destination plan): they return or fill a new module
and never change the source.
"""
from __future__ import annotations

import torch
from torch import nn

from autoc.arch.builder import AutocNet, ConvBNAct, SqueezeExcite, build_model
from autoc.arch.netspec import INPUT_GROUP, NetSpec, frozen_groups, group_producers


@torch.no_grad()
def inherit_weights(source: AutocNet, target: AutocNet) -> AutocNet:
    """Fill ``target`` with the first channels and the centre kernel crop of same-named layers.

    Layers the source lacks, or whose grouping differs, keep their initial weights.
    """
    source_modules = dict(source.named_modules())
    for name, module in target.named_modules():
        src = source_modules.get(name)
        if isinstance(module, ConvBNAct) and isinstance(src, ConvBNAct):
            _inherit_conv(src, module)
        elif isinstance(module, SqueezeExcite) and isinstance(src, SqueezeExcite):
            _inherit_se(src, module)
    cin = target.classifier.in_features
    if cin <= source.classifier.in_features and target.classifier.out_features == source.classifier.out_features:
        target.classifier.weight.copy_(source.classifier.weight[:, :cin])
        target.classifier.bias.copy_(source.classifier.bias)
    return target


def _inherit_conv(src: ConvBNAct, dst: ConvBNAct) -> None:
    s, d = src.conv, dst.conv
    s_dw = s.groups > 1 and s.groups == s.in_channels
    d_dw = d.groups > 1 and d.groups == d.in_channels
    # A grouped conv inherits from a dense one (the largest network is dense): each output
    # channel keeps the weights it has there on the inputs of its own group.
    grouped_from_dense = not d_dw and s.groups == 1 and d.groups > 1
    if s_dw != d_dw or (not d_dw and s.groups != d.groups and not grouped_from_dense):
        return
    if d.out_channels > s.out_channels or d.kernel_size[0] > s.kernel_size[0]:
        return
    if not d_dw and d.in_channels > s.in_channels:
        return
    off = (s.kernel_size[0] - d.kernel_size[0]) // 2
    k = d.kernel_size[0]
    crop = s.weight[: d.out_channels, :, off : off + k, off : off + k]
    if grouped_from_dense:
        per_group_in, per_group_out = d.in_channels // d.groups, d.out_channels // d.groups
        group = torch.arange(d.out_channels) // per_group_out
        inputs = group[:, None] * per_group_in + torch.arange(per_group_in)[None, :]  # (out, in per group)
        weight = crop[torch.arange(d.out_channels)[:, None], inputs]
    else:
        weight = crop[:, : d.weight.shape[1]]
    d.weight.copy_(weight)
    _copy_bn(src.bn, dst.bn, torch.arange(d.out_channels))


def _inherit_se(src: SqueezeExcite, dst: SqueezeExcite) -> None:
    """First hidden and first reduced channels, when the source's SE is at least as wide."""
    c, r = dst.reduce.in_channels, dst.reduce.out_channels
    if c > src.reduce.in_channels or r > src.reduce.out_channels:
        return
    dst.reduce.weight.copy_(src.reduce.weight[:r, :c])
    dst.reduce.bias.copy_(src.reduce.bias[:r])
    dst.expand.weight.copy_(src.expand.weight[:c, :r])
    dst.expand.bias.copy_(src.expand.bias[:c])


def _copy_bn(src: nn.BatchNorm2d, dst: nn.BatchNorm2d, index: torch.Tensor) -> None:
    for attr in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, attr).copy_(getattr(src, attr)[index])


def l1_channel_importance(model: AutocNet, spec: NetSpec) -> dict[str, torch.Tensor]:
    """Channel group -> importance per channel: L1 norm of the filters writing it, summed over writers."""
    modules = dict(model.named_modules())
    scores: dict[str, torch.Tensor] = {}
    for group, convs in group_producers(spec).items():
        total = None
        for conv in convs:
            weight = modules[conv.name].conv.weight.detach()
            norm = weight.abs().flatten(1).sum(1)
            total = norm if total is None else total + norm
        scores[group] = total
    return scores


@torch.no_grad()
def prune_to(model: AutocNet, full: NetSpec, pruned: NetSpec) -> AutocNet:
    """Return a physically smaller copy of ``model`` (plan ``full``) shaped as ``pruned``.

    Each channel group keeps its highest-L1 channels, in their original order; every layer
    that reads or writes the group is sliced with the same indices, so residual sums line up.
    """
    widths = {c.out_group: c.cout for c in pruned.convs()}
    frozen = frozen_groups(full)
    keep: dict[str, torch.Tensor] = {}
    for group, score in l1_channel_importance(model, full).items():
        k = widths[group]
        if group in frozen or k >= score.numel():
            keep[group] = torch.arange(score.numel())
        else:
            keep[group] = torch.topk(score, k).indices.sort().values
    return _sliced(model, full, pruned, keep)


@torch.no_grad()
def sorted_by_importance(model: AutocNet, spec: NetSpec) -> AutocNet:
    """A copy of ``model`` (plan ``spec``) computing the same function with every channel group's
    channels in order of L1 importance, most important first (groups of grouped convs keep theirs).

    A smaller network inheriting from it (``inherit_weights``: first channels, as Once-for-All
    after its channel sorting) then gets the channels the larger one relies on most, not
    whichever its training happened to put first."""
    frozen = frozen_groups(spec)
    order = {group: torch.arange(score.numel()) if group in frozen else torch.argsort(score, descending=True, stable=True)
             for group, score in l1_channel_importance(model, spec).items()}
    return _sliced(model, spec, spec, order)


def _sliced(model: AutocNet, full: NetSpec, target: NetSpec, keep: dict[str, torch.Tensor]) -> AutocNet:
    """``target``'s network holding, per channel group, ``model``'s channels ``keep[group]`` in that order."""
    keep = {INPUT_GROUP: torch.arange(full.in_channels), **keep}
    result = build_model(target)
    source = dict(model.named_modules())
    full_convs = {c.name: c for c in full.convs()}
    for conv in target.convs():
        src, dst = source[conv.name], result.get_submodule(conv.name)
        out_idx = keep[conv.out_group]
        weight = src.conv.weight[out_idx]
        if not full_convs[conv.name].depthwise and not full_convs[conv.name].grouped:
            weight = weight[:, keep[conv.in_group]]
        dst.conv.weight.copy_(weight)
        _copy_bn(src.bn, dst.bn, out_idx)
    for block in target.blocks:
        if block.se is not None:
            # SE reads and scales the hidden group: its reduce inputs and expand outputs follow that
            # group's channels; its reduced width is not pruned (all of it kept, in order).
            src, dst = source[block.se.name], result.get_submodule(block.se.name)
            idx = keep[block.se.group]
            dst.reduce.weight.copy_(src.reduce.weight[:, idx])
            dst.reduce.bias.copy_(src.reduce.bias)
            dst.expand.weight.copy_(src.expand.weight[idx])
            dst.expand.bias.copy_(src.expand.bias[idx])
    result.classifier.weight.copy_(model.classifier.weight[:, keep[target.classifier_group]])
    result.classifier.bias.copy_(model.classifier.bias)
    return result
