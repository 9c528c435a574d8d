"""Small architectures shared by tests."""
from __future__ import annotations

from autoc.arch.config import ArchConfig, BlockOp, StageConfig
from autoc.candidate import Candidate
from autoc.arch.policy import CompressionPolicy, LayerPolicy


def tiny_arch(*, num_classes: int = 10, head_width: int = 64, input_size: int = 16) -> ArchConfig:
    """Stem, a residual-tied first stage, a strided expanding stage with a residual pair, a skip."""
    return ArchConfig(
        input_size=input_size,
        in_channels=3,
        num_classes=num_classes,
        stem_width=16,
        stem_stride=1,
        stages=(
            StageConfig(16, 1, (BlockOp(3, 1),)),
            StageConfig(24, 2, (BlockOp(3, 6), BlockOp(5, 3))),
            StageConfig(32, 2, (BlockOp(7, 3), BlockOp(skip=True))),
        ),
        head_width=head_width,
    )


def uniform_policy(arch: ArchConfig, layer: LayerPolicy) -> CompressionPolicy:
    from autoc.arch.netspec import build_netspec

    return CompressionPolicy.from_mapping({name: layer for name in build_netspec(arch).layer_names()})


def tiny_candidate(*, keep: float = 0.5, precision: str = "int8", bits: int = 8) -> Candidate:
    arch = tiny_arch()
    quant = dict(precision=precision, weight_bits=bits, act_bits=8) if precision == "int8" else {}
    return Candidate(arch, uniform_policy(arch, LayerPolicy(keep_ratio=keep, **quant)))


SE_SPACE = __import__("pathlib").Path(__file__).parent / "space" / "se-hswish-tiny.yaml"  # per-stage hswish + SE


def se_arch(*, num_classes: int = 10, head_width: int = 64, input_size: int = 16) -> ArchConfig:
    """MobileNetV3-like: relu stem and first stage, hswish + squeeze-excite stages (one tied residual pair)."""
    return ArchConfig(
        input_size=input_size,
        in_channels=3,
        num_classes=num_classes,
        stem_width=16,
        stem_stride=1,
        stages=(
            StageConfig(16, 1, (BlockOp(3, 1),), se=True),
            StageConfig(24, 2, (BlockOp(3, 6), BlockOp(5, 3)), activation="hswish", se=True),
            StageConfig(32, 2, (BlockOp(7, 3), BlockOp(skip=True)), activation="hswish", se=True, se_ratio=0.5),
        ),
        head_width=head_width,
        activation="relu",
    )


def se_candidate(*, keep: float = 0.5, precision: str = "fp32", bits: int = 8) -> Candidate:
    arch = se_arch()
    quant = dict(precision=precision, weight_bits=bits, act_bits=8) if precision == "int8" else {}
    return Candidate(arch, uniform_policy(arch, LayerPolicy(keep_ratio=keep, **quant)))


def kill_channels_pruning_drops(model, full_spec, pruned_spec, *, seed: int = 1) -> None:
    """Zero, in every layer writing a prunable channel group, as many random channels as pruning to
    ``pruned_spec`` drops: those channels then carry nothing, so the pruned copy should compute the same."""
    import torch

    from autoc.arch.netspec import INPUT_GROUP, frozen_groups, group_producers

    widths = {c.out_group: c.cout for c in pruned_spec.convs()}
    frozen = frozen_groups(full_spec)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for group, writers in group_producers(full_spec).items():
            if group in frozen or group == INPUT_GROUP:
                continue
            n = writers[0].cout
            dead = torch.randperm(n, generator=gen)[: n - widths[group]]
            for conv in writers:
                layer = model.get_submodule(conv.name)
                layer.conv.weight[dead] = 0.0
                layer.bn.bias[dead] = 0.0
                layer.bn.running_mean[dead] = 0.0
