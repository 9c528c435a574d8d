"""The two ends of a space: the largest network (teacher, weight source), the cheapest candidates
and the slowest ones."""
from __future__ import annotations

from typing import TYPE_CHECKING

from autoc.arch.config import ArchConfig, BlockOp
from autoc.space.assemble import assemble
from autoc.space.params import parameter_plan

if TYPE_CHECKING:
    from autoc.candidate import Candidate
    from autoc.space.model import SearchSpace, StageSpace

# Bound on the op assignments minimal_candidates tries; reached only by spaces whose
# stages have many different op lists (shared lists give one assignment per op).
MAX_OP_ASSIGNMENTS = 512


def largest_arch(space: "SearchSpace", *, num_classes: int | None = None) -> ArchConfig:
    """Max depth, width, kernel and expansion everywhere, dense convs (groups 1), no skip where avoidable.

    The op may be one no candidate samples (``k5_e6`` from choices ``k3_e6, k5_e3``): it must
    contain every candidate's weights, not be one of them.
    """
    return ArchConfig(
        input_size=space.input_size,
        in_channels=space.in_channels,
        num_classes=space.classes if num_classes is None else num_classes,
        stem_width=max(space.stem.widths),
        stem_stride=space.stem.stride,
        stages=tuple(
            st.stage_config(max(st.widths), (_largest_op(st),) * st.max_depth)
            for st in space.stages
        ),
        head_width=max(space.head.widths),
        activation=space.activation,
        expand_at_e1=space.expand_at_e1,
    )


def _largest_op(stage: "StageSpace") -> BlockOp:
    convs = [op for op in stage.ops if not op.skip]
    if not convs:
        return BlockOp(skip=True)
    return BlockOp(kernel=max(op.kernel for op in convs), expansion=max(op.expansion for op in convs))


def minimal_candidates(space: "SearchSpace", *, num_classes: int | None = None) -> list["Candidate"]:
    """Small candidates among which an additive block-latency model finds the space's cheapest one.

    All use the least depth and width everywhere (and no head conv if allowed), the least keep
    ratio and weight bits, and one precision for the whole network. Blocks of a stage past the
    first have identical shapes, so under a model that ranks ops the same way in every block the
    cheapest candidate gives every block of a stage the stage's best op; each stage's op comes from
    an assignment that is "the best op under some ranking" (one per op when stages share their op
    list), and every precision is tried.
    """
    precisions = [(precision,) for precision in space.compression.precisions]
    return _extreme_candidates(space, pick=min, precision_cycles=precisions, num_classes=num_classes)


def maximal_candidates(space: "SearchSpace", *, num_classes: int | None = None) -> list["Candidate"]:
    """Large candidates among which an additive block-latency model finds the space's slowest one.

    The mirror of ``minimal_candidates``: the most depth, width, keep ratio and weight bits, each
    stage's op the worst under some ranking (the same assignments: a worst op is the best of the
    reversed ranking), one precision throughout or, where a profile charges precision switches,
    precisions alternating unit by unit (the most switches).
    """
    precisions = space.compression.precisions
    cycles = [(precision,) for precision in precisions]
    if len(precisions) > 1:
        cycles += [tuple(precisions), tuple(reversed(precisions))]
    return _extreme_candidates(space, pick=max, precision_cycles=cycles, num_classes=num_classes)


def _extreme_candidates(space: "SearchSpace", *, pick, precision_cycles, num_classes: int | None) -> list["Candidate"]:
    """One candidate per (op assignment, precision cycle): every other parameter at ``pick`` of its
    choices, the precision parameters taking the cycle's values in plan order."""
    plan = parameter_plan(space)
    candidates = []
    for ops in _op_assignments([st.op_names for st in space.stages]):
        for cycle in precision_cycles:
            values, precision_index = {}, 0
            for p in plan:
                if p.kind == "op":
                    values[p.name] = ops[p.stage]
                elif p.kind == "precision":
                    values[p.name] = cycle[precision_index % len(cycle)]
                    precision_index += 1
                else:  # width, depth, keep, wbits: the least is the cheapest, the most the slowest
                    values[p.name] = pick(p.choices)
            candidates.append(assemble(space, values, num_classes=num_classes))
    return candidates


def _op_assignments(stage_ops: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Per-stage op tuples where each stage's op is the best of its list under one common ranking.

    Walk a ranking from its best op: the stages that allow it take it, the others go on with
    the remaining ops. Stages sharing an op list always agree, so FBNet-like spaces give one
    tuple per op.
    """
    memo: dict[frozenset[int], list[dict[int, str]]] = {}

    def options(remaining: frozenset[int]) -> list[dict[int, str]]:
        if not remaining:
            return [{}]
        if remaining not in memo:
            found: dict[tuple[tuple[int, str], ...], dict[int, str]] = {}
            offered = dict.fromkeys(op for s in sorted(remaining) for op in stage_ops[s])
            for op in offered:
                takers = frozenset(s for s in remaining if op in stage_ops[s])
                for rest in options(remaining - takers):
                    choice = {**dict.fromkeys(takers, op), **rest}
                    found.setdefault(tuple(sorted(choice.items())), choice)
                    if len(found) >= MAX_OP_ASSIGNMENTS:
                        break
                if len(found) >= MAX_OP_ASSIGNMENTS:
                    break
            memo[remaining] = list(found.values())
        return memo[remaining]

    return [tuple(choice[s] for s in range(len(stage_ops))) for choice in options(frozenset(range(len(stage_ops))))]
