"""Small networks for the latency tests."""
from pathlib import Path

from autoc.arch.config import ArchConfig, BlockOp, StageConfig
from autoc.arch.netspec import NetSpec, build_netspec
from autoc.arch.policy import CompressionPolicy, LayerPolicy

# The project root's ../shared/data (as tests/conftest.py SHARED_DATA).
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
INT8 = LayerPolicy(precision="int8", weight_bits=8, act_bits=8)


def small_net(
    *,
    input_size: int = 16,
    width: int = 16,
    ops: tuple[BlockOp, ...] = (BlockOp(3, 3), BlockOp(3, 3)),
    stride: int = 2,
    head_width: int = 32,
    stages: tuple[StageConfig, ...] | None = None,
) -> NetSpec:
    """Stem (stride 1) -> one stage of ``ops`` (or ``stages``) -> optional head conv -> classifier."""
    arch = ArchConfig(
        input_size=input_size,
        in_channels=3,
        num_classes=10,
        stem_width=16,
        stem_stride=1,
        stages=stages or (StageConfig(width, stride, ops),),
        head_width=head_width,
    )
    return build_netspec(arch)


def int8_policy(
    spec: NetSpec, *, blocks: set[str] | None = None, stem: bool = True, head: bool = True
) -> CompressionPolicy:
    """int8 for the named blocks (all when None), and for stem/head as asked."""
    layers = {c.name: INT8 for b in spec.blocks if blocks is None or b.name in blocks for c in b.convs}
    if stem:
        layers["stem"] = INT8
    if head:
        layers["head"] = INT8
    return CompressionPolicy.from_mapping(layers)


TINY_SPACE_YAML = """\
name: tiny-latency
input_size: 16
classes: 10
activation: relu6
stem: {width: [8, 16], stride: 1}
stages:
  - {depth: [1, 2], width: [16, 24], stride: 2, kernel: [3, 5], expansion: [3, 6], per_block: true}
  - {depth: [1, 2], width: [24, 32], stride: 2, kernel: [3, 5], expansion: [3], per_block: true}
head: {width: [64]}
compression:
  keep_ratio: [0.5, 1.0]
  precision: [fp32, int8]
  weight_bits: [8, 4]
"""
