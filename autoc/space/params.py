"""The static parameter plan of a space: every trial suggests the same names with the same choices.

Samplers such as NSGA-II and TPE model a fixed set of categorical parameters, so the plan
does not depend on sampled values: block slots up to the stage's largest depth are always
present, and slots a shallower sample does not use are ignored. A parameter whose choice
list has one element is not suggested; its value is used directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from optuna.distributions import CategoricalDistribution

if TYPE_CHECKING:
    from autoc.space.model import SearchSpace

Kind = Literal["resolution", "width", "depth", "op", "keep", "precision", "wbits"]
Choice = int | float | str


@dataclass(frozen=True)
class Param:
    """A search parameter: its name, kind, choices and stage."""

    name: str
    kind: Kind
    choices: tuple[Choice, ...]
    stage: int | None = None  # the stage a depth, width or op parameter belongs to

    @property
    def searched(self) -> bool:
        return len(self.choices) > 1


def parameter_plan(space: "SearchSpace") -> tuple[Param, ...]:
    """All parameters in network order, including the single-choice ones that are not suggested."""
    comp = space.compression
    keep = tuple(comp.keep_ratios)
    precision = tuple(comp.precisions)
    # Bit widths only matter for int8 layers; without int8 they are dead weight for the sampler.
    wbits = tuple(comp.weight_bits) if "int8" in precision else comp.weight_bits[:1]

    def unit(prefix: str, keeps: tuple[str, ...]) -> list[Param]:
        out = [Param(f"{prefix}.{k}", "keep", keep) for k in keeps]
        return out + [Param(f"{prefix}.precision", "precision", precision), Param(f"{prefix}.wbits", "wbits", wbits)]

    plan = [Param("resolution", "resolution", space.resolutions), Param("stem.width", "width", space.stem.widths)]
    plan += unit("stem", ("keep",))
    for s, stage in enumerate(space.stages):
        plan += [
            Param(f"stage{s}.depth", "depth", stage.depths, s),
            Param(f"stage{s}.width", "width", stage.widths, s),
        ]
        if not stage.per_block:
            plan.append(Param(f"stage{s}.op", "op", stage.op_names, s))
        # Only an expand conv leads a hidden channel group; without one keep_hidden is never read.
        has_hidden = any(not op.skip and (op.expansion != 1 or space.expand_at_e1) for op in stage.ops)
        for b in range(stage.max_depth):
            slot = f"stage{s}.block{b}"
            if stage.per_block:
                plan.append(Param(f"{slot}.op", "op", stage.op_names, s))
            plan += unit(slot, ("keep_hidden", "keep_out") if has_hidden else ("keep_out",))
    if space.head.present:
        plan += [Param("head.width", "width", space.head.widths)] + unit("head", ("keep",))
    return tuple(plan)


def search_distributions(space: "SearchSpace") -> dict[str, CategoricalDistribution]:
    """The searched parameters as Optuna distributions (e.g. for ``study.ask(fixed_distributions)``)."""
    return {p.name: CategoricalDistribution(p.choices) for p in parameter_plan(space) if p.searched}
