"""Sub-networks of a space for supernet training: the largest, the smallest and random ones.

Each is a ``Candidate`` built through the space's own parameter plan, so the supernet sees
exactly the depths, widths, kernels, expansions and keep ratios the search samples.
"""
from __future__ import annotations

import random

from autoc.arch.config import BlockOp
from autoc.arch.netspec import ConvSpec
from autoc.candidate import Candidate
from autoc.arch.policy import CompressionPolicy
from autoc.space import SearchSpace, parameter_plan
from autoc.space.assemble import assemble


def largest_candidate(space: SearchSpace, *, num_classes: int) -> Candidate:
    """The largest network, unpruned: the supernet's full weights and the distillation teacher."""
    return Candidate(space.largest_arch(num_classes=num_classes), CompressionPolicy())


# Elastic dimensions in Once-for-All's progressive-shrinking order; "width" covers stage, stem
# and head widths and the policy's keep ratios (all narrow the same shared channels).
DIMENSIONS = ("kernel", "depth", "expansion", "width")
ALL_DIMENSIONS = frozenset(DIMENSIONS)


def smallest_candidate(space: SearchSpace, *, num_classes: int, elastic: frozenset[str] = ALL_DIMENSIONS) -> Candidate:
    """Least of every choice: resolution, depth, width, keep ratio, and the op with the least expansion
    and kernel (only in the ``elastic`` dimensions; the others at their largest)."""
    return assemble(space, extreme_choices(space, largest=False, elastic=elastic), num_classes=num_classes)


def extreme_choices(space: SearchSpace, *, largest: bool, elastic: frozenset[str] = ALL_DIMENSIONS) -> dict:
    """The space's parameter values at one end: most (or least) of every depth, width, keep ratio
    and bits, the op with the most (least) expansion and kernel, fp32 where it may be chosen."""
    pick = max if largest else min
    values = {}
    for p in parameter_plan(space):
        choices = elastic_choices(p, elastic)
        if p.kind == "op":
            values[p.name] = pick(choices, key=op_size)
        elif p.kind == "precision":
            values[p.name] = "fp32" if "fp32" in choices else choices[0]
        else:
            values[p.name] = pick(choices)
    return values


def random_candidate(space: SearchSpace, rng: random.Random, *, num_classes: int,
                     elastic: frozenset[str] = ALL_DIMENSIONS) -> Candidate:
    """Uniformly random choices, as a random sampler would draw them (in the ``elastic``
    dimensions only; the others at their largest)."""
    values = {p.name: rng.choice(elastic_choices(p, elastic)) for p in parameter_plan(space)}
    return assemble(space, values, num_classes=num_classes)


def elastic_choices(param, elastic: frozenset[str]) -> list:
    """The choices of ``param`` while only the ``elastic`` dimensions shrink; precision and bits
    always vary (the supernet's weights are shared across them), and so does the input resolution
    (Once-for-All trains elastic resolution throughout progressive shrinking)."""
    if elastic >= ALL_DIMENSIONS or param.kind in ("precision", "wbits", "resolution"):
        return list(param.choices)
    if param.kind == "op":
        ops = list(param.choices)
        if "expansion" not in elastic:  # the most expansion only (a skip op counts as least)
            most = max(op_size(c)[:2] for c in ops)
            ops = [c for c in ops if op_size(c)[:2] == most]
        if "kernel" not in elastic:  # per expansion, the op with its largest kernel only
            largest_kernel: dict = {}
            for c in ops:
                largest_kernel[op_size(c)[:2]] = max(largest_kernel.get(op_size(c)[:2], c), c, key=op_size)
            ops = list(largest_kernel.values())
        return ops
    dimension = "width" if param.kind in ("width", "keep") else param.kind
    return list(param.choices) if dimension in elastic else [max(param.choices)]


def skip_conv_slots(space: SearchSpace, *, num_classes: int) -> tuple[ConvSpec, ...]:
    """1x1 convs that skip ops need where they change shape; the largest network has none of them.

    Sized for the widest input and output the slot can see.
    """
    largest = space.largest_arch(num_classes=num_classes)
    slots = []
    cin = largest.stem_width
    for s, stage in enumerate(space.stages):
        if any(op.skip for op in stage.ops):
            for b in range(stage.max_depth):
                reads = cin if b == 0 else max(stage.widths)
                stride = stage.stride if b == 0 else 1
                name = f"stages.{s}.{b}.conv"
                slots.append(ConvSpec(name, reads, max(stage.widths), 1, stride, 1, "", "", True))
        cin = max(stage.widths)
    return tuple(slots)


def op_size(name) -> tuple[int, int, int]:
    """Sort key of an op choice (e.g. ``k5_e6``): skip, then by expansion, then by kernel."""
    op = BlockOp.parse(str(name))
    return (0, 0, 0) if op.skip else (1, op.expansion, op.kernel)

