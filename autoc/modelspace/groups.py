"""Which channels of a user's model prune together, found with Torch-Pruning's dependency graph.

A channel group is the set of layer outputs that must shrink together: a conv's output channels,
its norm layer, everything a residual add or concatenation ties to them, and the input channels of
the layers that read them. Each group is named by its first layer in the model's module order, so
a name is stable across runs and readable in a policy file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

import torch
import torch_pruning as tp
from torch import nn

from autoc.errors import PolicyError

# Layers that get a precision (fp32/int8) and weight bits each.
WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)

CLASSIFIER = "classifier: its outputs are the model's classes"


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels removed together: ``layers`` (module paths) all lose the same channels.

    ``ties`` says how far each conv/linear layer shrinks with the group: (layer, "out" or "in", how
    many of its output or input channels the group's channels span); a layer reading the group
    through a flatten spans several inputs per channel.
    """

    name: str
    channels: int
    layers: tuple[str, ...]
    ties: tuple[tuple[str, str, int], ...] = ()

    def kept(self, keep_ratio: float, *, multiple: int = 1) -> int:
        """Channels left at ``keep_ratio``, rounded to a multiple of ``multiple`` (at least one multiple,
        never more than the group has)."""
        if not 0.0 < keep_ratio <= 1.0:
            raise PolicyError(f"keep ratio {keep_ratio} of group {self.name!r} is outside (0, 1]: use e.g. 0.5")
        if multiple < 1:
            raise PolicyError(f"channel multiple {multiple} is below 1: use 1 (any count) or e.g. 8")
        count = max(multiple, int(round(self.channels * keep_ratio / multiple)) * multiple)
        return min(self.channels, count)


@dataclass(frozen=True)
class ModelStructure:
    """What the search may change in a model: its channel groups and its weight layers."""

    groups: tuple[ChannelGroup, ...]
    layers: tuple[str, ...]  # conv and linear layers in module order
    fixed: Mapping[str, str] = field(default_factory=dict)  # layer -> why its output channels stay
    convs: tuple[str, ...] = ()  # the conv layers among ``layers`` not in ``fixed``
    # The linear layers among ``layers`` not in ``fixed`` (an MLP classifier's hidden layers; the
    # final classifier is fixed): with ``convs``, the layers offered int8 (``int8_layers``)
    linears: tuple[str, ...] = ()

    @property
    def int8_layers(self) -> tuple[str, ...]:
        """The layers a compress search offers int8 and weight bits, in module order.

        The final classifier is not among them, as autoc's own spaces keep theirs fp32: int8 there
        would round the logits themselves to 256 levels (ONNX Runtime requantises a QDQ Gemm's
        output) and the class weights the short distillation leans on most, to save a layer that is
        a sliver of the latency. A user who wants it int8 names it in a policy (``compress`` quantises
        any conv or linear layer a policy names)."""
        offered = set(self.convs) | set(self.linears)
        return tuple(name for name in self.layers if name in offered)

    def group(self, name: str) -> ChannelGroup:
        for group in self.groups:
            if group.name == name:
                return group
        names = [g.name for g in self.groups]
        listed = ", ".join(names[:6]) + (f" ... ({len(names)} groups)" if len(names) > 6 else "")
        raise PolicyError(f"the model has no channel group {name!r}: use one of {listed or '(none)'}")


def analyse(model: nn.Module, example_input: torch.Tensor) -> ModelStructure:
    """The prunable channel groups and weight layers of ``model`` for inputs like ``example_input``.

    The classifier's outputs and any layer Torch-Pruning has no rule for stay as they are; both are
    named in ``fixed`` with the reason.
    """
    traced = trace(model, example_input)
    groups = tuple(group for group, _ in traced.sorted_groups())
    layers = tuple(name for name, module in model.named_modules() if isinstance(module, WEIGHT_LAYERS))
    convs = tuple(name for name in layers if name not in traced.fixed
                  and isinstance(model.get_submodule(name), nn.Conv2d))
    linears = tuple(name for name in layers if name not in traced.fixed
                    and isinstance(model.get_submodule(name), nn.Linear))
    return ModelStructure(groups=groups, layers=layers, fixed=dict(traced.fixed), convs=convs, linears=linears)


@dataclass(frozen=True)
class Traced:
    """Torch-Pruning's dependency graph of one model, with the layers whose outputs must stay."""

    graph: tp.DependencyGraph
    names: Mapping[nn.Module, str]
    fixed: Mapping[str, str]

    def module_order(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(dict.fromkeys(self.names.values()))}

    def sorted_groups(self) -> list[tuple[ChannelGroup, object]]:
        """Every prunable group with Torch-Pruning's group object, in the model's module order."""
        order = self.module_order()
        return sorted(self.groups(), key=lambda pair: order[pair[0].name])

    def groups(self) -> Iterator[tuple[ChannelGroup, object]]:
        """Each prunable group with Torch-Pruning's group object, in the graph's order. Lazy: a group
        pruned while iterating leaves the groups still to come valid (their channels are untouched)."""
        order = self.module_order()
        ignored = [module for module, name in self.names.items() if name in self.fixed]
        for tp_group in self.graph.get_all_groups(ignored_layers=ignored):
            layers, ties, blocked = [], {}, False
            for dep, idxs in tp_group:
                target = dep.target.module
                name = self.names.get(target)
                if name is None:
                    continue
                out = self.graph.is_out_channel_pruning_fn(dep.handler)
                # the classifier's inputs may shrink, its outputs not; a layer without a rule not at all
                blocked = blocked or (name in self.fixed and (out or self.fixed[name] != CLASSIFIER))
                if out and not isinstance(target, nn.Parameter):
                    layers.append(name)
                if isinstance(target, WEIGHT_LAYERS):
                    side = "out" if out else "in"
                    ties[name, side] = ties.get((name, side), 0) + len(idxs)
            if blocked or not layers:
                continue
            layers = sorted(set(layers), key=order.__getitem__)
            tied = tuple(sorted(((layer, side, count) for (layer, side), count in ties.items()),
                                key=lambda t: (order[t[0]], t[1])))
            yield ChannelGroup(name=layers[0], channels=len(tp_group[0].idxs), layers=tuple(layers),
                               ties=tied), tp_group


def trace(model: nn.Module, example_input: torch.Tensor) -> Traced:
    """Trace ``model`` (run once on ``example_input``) into Torch-Pruning's dependency graph."""
    was_training = model.training
    model.eval()
    try:
        classifier = _classifier(model, example_input)
        with torch.enable_grad():  # Torch-Pruning traces through autograd
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False)
    finally:
        model.train(was_training)
    names: dict = {module: name for name, module in model.named_modules()}
    fixed = {names[classifier]: CLASSIFIER} if classifier is not None else {}
    for module, name in list(names.items()):
        # Torch-Pruning treats a layer type it does not know as element-wise and guesses how to cut the
        # parameters it holds; a guess could change what the model computes, so such layers stay whole.
        if module._parameters and tp.ops.module2type(module) == tp.ops.OPTYPE.ELEMENTWISE:
            fixed[name] = f"{type(module).__name__}: Torch-Pruning has no rule to prune it"
            for parameter in module._parameters.values():
                names[parameter] = name
    return Traced(graph=graph, names=names, fixed=fixed)


def _classifier(model: nn.Module, example_input: torch.Tensor) -> nn.Module | None:
    """The last weight layer run whose output channels are the model's outputs."""
    ran: list[tuple[nn.Module, int]] = []
    hooks = [module.register_forward_hook(lambda m, _i, out: ran.append((m, out.shape[1])))
             for module in model.modules() if isinstance(module, WEIGHT_LAYERS)]
    try:
        with torch.no_grad():
            output = model(example_input)
    finally:
        for hook in hooks:
            hook.remove()
    if not isinstance(output, torch.Tensor) or output.dim() < 2:
        return None
    for module, channels in reversed(ran):
        if channels == output.shape[1]:
            return module
    return None
