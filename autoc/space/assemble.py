"""Parameter values -> Candidate: the architecture, then a policy whose keep ratios follow channel groups.

Pruning decides per channel group (``autoc.arch.netspec``), so a group takes the keep ratio
sampled for its leader, the first conv that writes it, and every other writer gets the same
value: a depthwise conv shares its block's hidden group, a residual chain shares the
``keep_out`` of its first block, and the stem's group may join stage 0's chain. Groups that
touch a grouped conv keep all channels.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from autoc.arch.config import ArchConfig, BlockOp
from autoc.arch.netspec import build_netspec, frozen_groups, group_producers
from autoc.candidate import Candidate
from autoc.arch.policy import CompressionPolicy, LayerPolicy

if TYPE_CHECKING:
    from autoc.space.model import SearchSpace
    from autoc.space.params import Choice


def assemble(space: "SearchSpace", values: Mapping[str, "Choice"], *, num_classes: int | None = None) -> Candidate:
    """Build the candidate from a value for every parameter of ``parameter_plan(space)``."""
    stages = []
    for s, stage in enumerate(space.stages):
        depth = int(values[f"stage{s}.depth"])
        if stage.per_block:
            ops = tuple(BlockOp.parse(str(values[f"stage{s}.block{b}.op"])) for b in range(depth))
        else:
            ops = (BlockOp.parse(str(values[f"stage{s}.op"])),) * depth
        stages.append(stage.stage_config(int(values[f"stage{s}.width"]), ops))
    arch = ArchConfig(
        input_size=int(values["resolution"]),
        in_channels=space.in_channels,
        num_classes=space.classes if num_classes is None else num_classes,
        stem_width=int(values["stem.width"]),
        stem_stride=space.stem.stride,
        stages=tuple(stages),
        head_width=int(values["head.width"]) if space.head.present else 0,
        activation=space.activation,
        expand_at_e1=space.expand_at_e1,
    )
    return Candidate(arch=arch, policy=_policy(arch, values))


def _policy(arch: ArchConfig, values: Mapping[str, "Choice"]) -> CompressionPolicy:
    full = build_netspec(arch)
    unit: dict[str, str] = {full.stem.name: "stem"}
    keep_key: dict[str, str] = {full.stem.name: "stem.keep"}
    for block in full.blocks:
        prefix = f"stage{block.stage}.block{block.index}"
        last = len(block.convs) - 1
        for i, conv in enumerate(block.convs):
            unit[conv.name] = prefix
            # The last conv writes the block output; earlier ones (expand, dw) the hidden tensor.
            role = "keep_out" if i == last else "keep_hidden"
            keep_key[conv.name] = f"{prefix}.{role}"
    if full.head is not None:
        unit[full.head.name], keep_key[full.head.name] = "head", "head.keep"

    frozen = frozen_groups(full)
    keep = {
        group: 1.0 if group in frozen else float(values[keep_key[convs[0].name]])
        for group, convs in group_producers(full).items()
    }
    return CompressionPolicy.from_mapping(
        {conv.name: _layer(keep[conv.out_group], values, unit[conv.name]) for conv in full.convs()}
    )


def _layer(keep_ratio: float, values: Mapping[str, "Choice"], unit: str) -> LayerPolicy:
    if values[f"{unit}.precision"] == "int8":
        return LayerPolicy(keep_ratio=keep_ratio, precision="int8", weight_bits=int(values[f"{unit}.wbits"]), act_bits=8)
    return LayerPolicy(keep_ratio=keep_ratio, precision="fp32", weight_bits=32, act_bits=32)
