"""Where a compress study starts: policies worth a trial before the sampler has learnt anything.

The sampler sees a few dozen trials of a space with a keep ratio per channel group and a
precision per conv and linear layer; left alone, its first trials are random and most miss a tight budget or
waste it. So each study starts from policies built from the layer table alone, without training:

- uniform: one keep ratio for every group, all fp32 or all int8 (the baselines a user would try);
- int8 where it is faster: the same widths, each layer int8 only where the table times its int8
  kernel faster than its fp32 one at that shape (on x86 a conv on a 1x1 or 2x2 map often is not);
- greedy, per budget: from the whole model, lower one group's keep ratio at a time, the group
  whose step saves the most predicted time per share of its L1 weight mass removed, until the
  policy fits (AMC's and NetAdapt's idea of spending a budget where it is cheap, with the table
  as the latency model and magnitude as the cost).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from autoc.modelspace.groups import ModelStructure, trace
from autoc.modelspace.latency import Layer, LayerTable
from autoc.modelspace.prune import l1_importance

Params = dict  # a trial's parameters: "keep:<group>" -> ratio, "int8:<layer>" -> bool
Shape = Callable[[Mapping[str, float], Mapping[str, bool]], Sequence[Layer]]  # (keep, int8) -> the layers


def int8_where_faster(layers: Sequence[Layer], table: LayerTable, names: Sequence[str], *,
                      threads: int = 1) -> dict[str, bool]:
    """Per layer in ``names`` (conv or linear): int8 when the table times its int8 kernel faster than
    fp32 at the shape it has in ``layers`` (both timed where the table lacks them)."""
    by_name = {layer.name: layer for layer in layers}
    pairs = {name: (replace(by_name[name], precision="fp32"), replace(by_name[name], precision="int8"))
             for name in names if name in by_name}
    table.measure([layer for pair in pairs.values() for layer in pair], threads=threads)
    return {name: table.units_ms[int8.key] < table.units_ms[fp32.key] for name, (fp32, int8) in pairs.items()}


def kept_mass(model: nn.Module, structure: ModelStructure, example_input: torch.Tensor,
              keep_choices: Sequence[float], *, multiple: int = 1) -> dict[str, dict[float, float]]:
    """Per group and keep ratio, the share of the group's L1 weight mass its kept channels hold
    (the most important ones are kept, as ``autoc.modelspace.prune`` keeps them)."""
    named = {group.name: group for group in structure.groups}
    shares = {}
    for group, tp_group in trace(model, example_input).sorted_groups():
        with torch.no_grad():
            scores = torch.sort(l1_importance(tp_group).float(), descending=True).values
        total = float(scores.sum()) or 1.0
        shares[group.name] = {ratio: float(scores[:named[group.name].kept(ratio, multiple=multiple)].sum()) / total
                              for ratio in keep_choices}
    return shares


def greedy_keep(structure: ModelStructure, shape: Shape, table: LayerTable, *, budget_ms: float,
                keep_choices: Sequence[float], mass: Mapping[str, Mapping[float, float]],
                precision: Callable[[Sequence[Layer]], dict[str, bool]],
                threads: int = 1) -> tuple[dict[str, float], dict[str, bool]] | None:
    """Keep ratios (and the precisions ``precision`` picks for them) lowered one group step at a
    time, cheapest predicted time per L1 mass first, until the policy's predicted latency fits
    ``budget_ms``; None when even every group at the lowest ratio does not fit."""
    choices = sorted(keep_choices)
    keep = {g.name: choices[-1] for g in structure.groups}

    def predicted(keep_now: Mapping[str, float]) -> tuple[float, dict[str, bool]]:
        fp32 = shape(keep_now, {})
        int8 = precision(fp32)
        layers = shape(keep_now, int8)
        table.measure(layers, threads=threads)
        return table.predict_ms(layers), int8

    now, int8 = predicted(keep)
    while now > budget_ms:
        best = None
        for name, ratio in keep.items():
            index = choices.index(ratio)
            if index == 0:
                continue
            lower = choices[index - 1]
            ms, precisions = predicted({**keep, name: lower})
            lost = max(mass[name][ratio] - mass[name][lower], 1e-6)
            score = (now - ms) / lost
            if best is None or score > best[0]:
                best = (score, name, lower, ms, precisions)
        if best is None:
            return None
        _, name, lower, now, int8 = best
        keep[name] = lower
    return keep, int8


def start_params(structure: ModelStructure, shape: Shape, table: LayerTable, *, budgets_ms: Sequence[float],
                 keep_choices: Sequence[float], mass: Mapping[str, Mapping[float, float]],
                 threads: int = 1) -> list[Params]:
    """The trials a new compress study starts with, best-informed first: per budget (largest
    first) the greedy policy, then per budget the widest uniform keep ratio that fits with int8
    where faster, then every uniform policy that fits the largest budget (all int8 or all fp32,
    widest first). Duplicates are dropped."""
    def precision(layers: Sequence[Layer]) -> dict[str, bool]:
        return int8_where_faster(layers, table, structure.int8_layers, threads=threads)

    def params(keep: Mapping[str, float], int8: Mapping[str, bool]) -> Params:
        return {**{f"keep:{g}": ratio for g, ratio in keep.items()},
                **{f"int8:{n}": bool(int8.get(n, False)) for n in structure.int8_layers}}

    def fits(keep: Mapping[str, float], int8: Mapping[str, bool], budget: float) -> bool:
        layers = shape(keep, int8)
        table.measure(layers, threads=threads)
        return table.predict_ms(layers) <= budget

    budgets = sorted(budgets_ms, reverse=True)
    widest_first = sorted(keep_choices, reverse=True)
    starts: list[Params] = []
    for budget in budgets:
        found = greedy_keep(structure, shape, table, budget_ms=budget, keep_choices=keep_choices, mass=mass,
                            precision=precision, threads=threads)
        if found is not None:
            starts.append(params(*found))
    for budget in budgets:
        for ratio in widest_first:
            keep = {g.name: ratio for g in structure.groups}
            int8 = precision(shape(keep, {}))
            if fits(keep, int8, budget):
                starts.append(params(keep, int8))
                break
    for ratio in widest_first:
        for all_int8 in (True, False):
            keep = {g.name: ratio for g in structure.groups}
            int8 = {n: all_int8 for n in structure.int8_layers}
            if fits(keep, int8, budgets[0]):
                starts.append(params(keep, int8))
    unique = []
    for p in starts:
        if p not in unique:
            unique.append(p)
    return unique
