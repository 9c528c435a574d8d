"""Concrete network plan: every conv with its channel counts and the channel groups it touches.

A *channel group* is a set of tensors that must keep the same channels: a residual chain,
or a block's hidden tensor shared by the expand and the depthwise conv. Pruning decides
per group, so residual additions stay consistent by construction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from autoc.arch.config import ArchConfig
from autoc.arch.policy import CompressionPolicy, FP32, LayerPolicy
from autoc.errors import PolicyError

INPUT_GROUP = "input"
# The head conv's layer name; the classifier after it runs at the head's precision.
HEAD = "head"
CHANNEL_MULTIPLE = 8


@dataclass(frozen=True)
class ConvSpec:
    """One conv of a network plan (BatchNorm after it, the activation when ``act``): its shape and the
    channel groups of its input and output, which pruning keeps consistent."""

    name: str
    cin: int
    cout: int
    kernel: int
    stride: int
    groups: int
    in_group: str
    out_group: str
    act: bool

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.cin == self.cout

    @property
    def grouped(self) -> bool:
        """A grouped (not depthwise) conv: its channels cannot be pruned freely."""
        return self.groups > 1 and not self.depthwise


@dataclass(frozen=True)
class SESpec:
    """Squeeze-excite after a block's depthwise conv: global average pool, 1x1 conv ``channels`` ->
    ``reduced`` (bias, ReLU), 1x1 conv ``reduced`` -> ``channels`` (bias), hard-sigmoid, times the
    hidden tensor. No BatchNorm. ``channels`` is the hidden group (``group``), pruned with it;
    ``reduced`` depends on the unpruned hidden width only, so pruning leaves it whole."""

    name: str  # module path, e.g. ``stages.1.0.se``; its convs are ``.reduce`` and ``.expand``
    channels: int
    reduced: int
    group: str

    @property
    def reduce_name(self) -> str:
        return f"{self.name}.reduce"

    @property
    def expand_name(self) -> str:
        return f"{self.name}.expand"

    def macs(self) -> int:
        """Multiply-accumulates of its two 1x1 convs on the pooled vector (pool and scale not counted)."""
        return 2 * self.channels * self.reduced

    def params(self) -> int:
        return 2 * self.channels * self.reduced + self.channels + self.reduced


@dataclass(frozen=True)
class BlockSpec:
    """One block. ``convs`` empty means identity. ``shuffle`` > 1: channel shuffle after convs[0].
    ``activation`` is what its convs with ``act`` apply; ``se``: squeeze-excite after the depthwise conv."""

    name: str
    stage: int
    index: int
    resolution: int  # spatial size of the input feature map
    cin: int
    cout: int
    convs: tuple[ConvSpec, ...]
    residual: bool
    shuffle: int
    activation: str = "relu6"
    se: SESpec | None = None

    @property
    def stride(self) -> int:
        return max((c.stride for c in self.convs), default=1)


@dataclass(frozen=True)
class NetSpec:
    """A whole network plan: stem, blocks, optional head and classifier; what the builder, the latency
    models, the metrics and the exporters read."""

    input_size: int
    in_channels: int
    num_classes: int
    activation: str
    stem: ConvSpec
    blocks: tuple[BlockSpec, ...]
    head: ConvSpec | None
    classifier_in: int
    classifier_group: str
    head_resolution: int

    def convs(self) -> Iterator[ConvSpec]:
        yield self.stem
        for block in self.blocks:
            yield from block.convs
        if self.head is not None:
            yield self.head

    def conv_resolutions(self) -> Iterator[tuple[ConvSpec, int]]:
        """Each conv (order of :meth:`convs`) with the spatial size of its output, where it runs."""
        yield self.stem, _downsample(self.input_size, self.stem.stride)
        for block in self.blocks:
            resolution = block.resolution
            for conv in block.convs:
                resolution = _downsample(resolution, conv.stride)
                yield conv, resolution
        if self.head is not None:
            yield self.head, self.head_resolution

    def layer_names(self) -> list[str]:
        return [c.name for c in self.convs()]


def make_divisible(value: float, divisor: int = CHANNEL_MULTIPLE) -> int:
    """MobileNetV3's ``_make_divisible``: nearest multiple of ``divisor`` (at least ``divisor``),
    never more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def round_channels(channels: float, *, maximum: int) -> int:
    """Round to a multiple of 8 (fast kernels), at least 8, never above ``maximum``."""
    rounded = max(CHANNEL_MULTIPLE, int(round(channels / CHANNEL_MULTIPLE)) * CHANNEL_MULTIPLE)
    return min(rounded, maximum)


def build_netspec(arch: ArchConfig, policy: CompressionPolicy | None = None) -> NetSpec:
    """Plan the network of ``arch``; with ``policy``, channel groups are pruned by its keep ratios."""
    full = _plan(arch, widths=None)
    if policy is None:
        return full
    return _plan(arch, widths=_pruned_widths(full, policy))


def group_producers(spec: NetSpec) -> dict[str, list[ConvSpec]]:
    """Channel group -> convs that write it, in network order (the first is the group's leader)."""
    producers: dict[str, list[ConvSpec]] = {}
    for conv in spec.convs():
        producers.setdefault(conv.out_group, []).append(conv)
    return producers


def frozen_groups(spec: NetSpec) -> set[str]:
    """Groups touched by a grouped 1x1 conv: their channels are kept whole."""
    frozen = {INPUT_GROUP}
    for conv in spec.convs():
        if conv.grouped:
            frozen.update({conv.in_group, conv.out_group})
    return frozen


def _pruned_widths(full: NetSpec, policy: CompressionPolicy) -> dict[str, int]:
    frozen = frozen_groups(full)
    widths: dict[str, int] = {}
    for group, convs in group_producers(full).items():
        leader = policy.get(convs[0].name)
        for other in convs[1:]:
            if policy.get(other.name).keep_ratio != leader.keep_ratio:
                raise PolicyError(
                    f"layers {convs[0].name!r} and {other.name!r} share channels (residual or depthwise tie) "
                    f"but have keep ratios {leader.keep_ratio} and {policy.get(other.name).keep_ratio}; "
                    "give tied layers the same keep_ratio"
                )
        if group in frozen and leader.keep_ratio != 1.0:
            raise PolicyError(
                f"layer {convs[0].name!r} feeds a grouped conv, whose channels cannot be pruned; "
                "set its keep_ratio to 1.0"
            )
        full_width = convs[0].cout
        widths[group] = full_width if group in frozen else round_channels(
            full_width * leader.keep_ratio, maximum=full_width
        )
    return widths


def _plan(arch: ArchConfig, *, widths: dict[str, int] | None) -> NetSpec:
    def width(group: str, default: int) -> int:
        return default if widths is None else widths.get(group, default)

    resolution = arch.input_size
    stem_out = width("stem", arch.stem_width)
    stem = ConvSpec("stem", arch.in_channels, stem_out, 3, arch.stem_stride, 1, INPUT_GROUP, "stem", True)
    resolution = _downsample(resolution, arch.stem_stride)

    blocks: list[BlockSpec] = []
    cur_group, cur_full, cur = "stem", arch.stem_width, stem_out
    for s, stage in enumerate(arch.stages):
        for b, op in enumerate(stage.ops):
            name = f"stages.{s}.{b}"
            stride = stage.stride if b == 0 else 1
            full_out = stage.width
            ties = stride == 1 and cur_full == full_out
            convs: tuple[ConvSpec, ...]
            shuffle = 0
            se = None
            if op.skip:
                if ties:
                    convs, out_group = (), cur_group
                else:
                    out_group = f"{name}.out"
                    out = width(out_group, full_out)
                    convs = (ConvSpec(f"{name}.conv", cur, out, 1, stride, 1, cur_group, out_group, True),)
                residual = False
            else:
                out_group = cur_group if ties else f"{name}.out"
                out = width(out_group, full_out)
                has_expand = op.expansion != 1 or arch.expand_at_e1
                g = op.groups
                if has_expand:
                    hidden_group = f"{name}.hidden"
                    hidden = width(hidden_group, cur_full * op.expansion)
                    expand = ConvSpec(f"{name}.expand", cur, hidden, 1, 1, g, cur_group, hidden_group, True)
                    convs = (expand,)
                    shuffle = g if g > 1 else 0
                else:
                    hidden_group, hidden, convs = cur_group, cur, ()
                dw = ConvSpec(f"{name}.dw", hidden, hidden, op.kernel, stride, hidden, hidden_group, hidden_group, True)
                project = ConvSpec(f"{name}.project", hidden, out, 1, 1, g, hidden_group, out_group, False)
                convs = convs + (dw, project)
                residual = ties
                if stage.se:
                    full_hidden = cur_full * op.expansion if has_expand else cur_full
                    reduced = make_divisible(full_hidden * stage.se_ratio)
                    se = SESpec(f"{name}.se", hidden, reduced, hidden_group)
            out_width = convs[-1].cout if convs else cur
            blocks.append(
                BlockSpec(name, s, b, resolution, cur, out_width, convs, residual, shuffle,
                          arch.stage_activation(s), se)
            )
            resolution = _downsample(resolution, stride)
            cur_group, cur_full, cur = out_group, full_out, out_width

    head = None
    classifier_in, classifier_group = cur, cur_group
    if arch.head_width > 0:
        head_out = width(HEAD, arch.head_width)
        head = ConvSpec(HEAD, cur, head_out, 1, 1, 1, cur_group, HEAD, True)
        classifier_in, classifier_group = head_out, HEAD
    return NetSpec(
        input_size=arch.input_size,
        in_channels=arch.in_channels,
        num_classes=arch.num_classes,
        activation=arch.activation,
        stem=stem,
        blocks=tuple(blocks),
        head=head,
        classifier_in=classifier_in,
        classifier_group=classifier_group,
        head_resolution=resolution,
    )


def _downsample(resolution: int, stride: int) -> int:
    return (resolution + stride - 1) // stride


def block_precision(block: BlockSpec, policy: CompressionPolicy) -> str:
    """The precision a block runs at; all its convs must agree."""
    precisions = {policy.get(c.name).precision for c in block.convs}
    if len(precisions) > 1:
        raise PolicyError(
            f"block {block.name!r} mixes precisions {sorted(precisions)}; a block runs fused at one "
            "precision, so give its convs the same precision"
        )
    return precisions.pop() if precisions else FP32.precision


__all__ = [
    "BlockSpec",
    "ConvSpec",
    "SESpec",
    "NetSpec",
    "LayerPolicy",
    "build_netspec",
    "block_precision",
    "frozen_groups",
    "group_producers",
    "make_divisible",
    "round_channels",
]
