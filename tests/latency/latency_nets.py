"""Small networks for the latency tests."""
from autoc.arch.config import ArchConfig, BlockOp, StageConfig
from autoc.arch.netspec import NetSpec, build_netspec
from autoc.compress.policy import CompressionPolicy, LayerPolicy

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
