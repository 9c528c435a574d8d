"""Latency units of a network, their lookup-table keys, and standalone modules to measure them.

A network is timed as a sum of units: the stem conv, each block (expand + depthwise +
project + residual, as the runtime fuses them) and the head (head conv + pooling +
classifier). A unit's key names everything that changes its latency, so equal keys can
share one measurement across networks.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from autoc.arch.builder import Block, ConvBNAct
from autoc.arch.netspec import HEAD, BlockSpec, ConvSpec, NetSpec, block_precision
from autoc.arch.policy import CompressionPolicy
from autoc.latency.energy import conv_cost
from autoc.latency.measure import Measurement
from autoc.latency.runtimes import ORT, Runtime

STEM = "stem"
IDENTITY = "identity"  # key of blocks without convs: they cost nothing

# Enough runs for a stable low percentile of a sub-millisecond block without slowing calibration.
BLOCK_WARMUP = 10
BLOCK_REPEATS = 60


@dataclass(frozen=True)
class Unit:
    """One timed piece of a network. ``kind`` is 'stem', 'block' or 'head'."""

    name: str
    kind: str
    key: str
    precision: str
    input_shape: tuple[int, int, int, int]
    activation: str
    convs: tuple[ConvSpec, ...]
    block: BlockSpec | None = None
    num_classes: int = 0
    classifier_in: int = 0

    @property
    def measurable(self) -> bool:
        return self.key != IDENTITY

    @property
    def int8_layers(self) -> frozenset[str]:
        if self.precision != "int8":
            return frozenset()
        return frozenset(c.name for c in self.convs) | ({HEAD} if self.kind == "head" else set())


def unit_work(unit: Unit) -> tuple[int, int]:
    """(MACs, activation elements read + written) of ``unit``: what a cost prior scales with."""
    macs = elements = 0
    resolution = unit.input_shape[2]
    for conv in unit.convs:
        cost = conv_cost(conv, resolution)
        macs, elements = macs + cost.macs, elements + cost.activations
        resolution = -(-resolution // conv.stride)
        if unit.block is not None and unit.block.se is not None and conv.depthwise:
            # squeeze-excite: pool + scale read/write the hidden tensor, two 1x1 convs on a vector
            se = unit.block.se
            macs += se.macs() + 2 * se.channels * resolution**2
            elements += 2 * se.channels * resolution**2 + 2 * (se.channels + se.reduced)
    if unit.kind == "head":
        macs += unit.classifier_in * unit.num_classes
        elements += unit.classifier_in * (resolution**2 + 1) + unit.num_classes
    return macs, elements


# Depthwise kernel sizes the cost prior prices apart (``{precision}_dw_k{K}_mmac``); others share ``dw_mmac``.
DEPTHWISE_KERNELS = (3, 5, 7)


def prior_features(unit: Unit) -> dict[str, float]:
    """The unit's work as the cost prior weighs it (``autoc.latency.profile.PRIOR_FEATURES``), under
    the precision it runs at: depthwise MACs apart from the others and per kernel size (a
    depthwise conv does few MACs per byte it moves, so each costs more, and how much more depends
    on its kernel), activation elements, and a fixed part."""
    macs, elements = unit_work(unit)
    precision = "int8" if unit.precision == "int8" else "fp32"
    features = {f"{precision}_mmac": macs / 1e6, f"{precision}_melement": elements / 1e6, f"{precision}_unit": 1.0}
    resolution = unit.input_shape[2]
    for conv in unit.convs:
        if conv.depthwise:
            mmacs = conv_cost(conv, resolution).macs / 1e6
            name = f"{precision}_dw_k{conv.kernel}_mmac" if conv.kernel in DEPTHWISE_KERNELS else f"{precision}_dw_mmac"
            features[name] = features.get(name, 0.0) + mmacs
            features[f"{precision}_mmac"] -= mmacs
        resolution = -(-resolution // conv.stride)
    return features


def precision_transitions(precisions: Iterable[str]) -> int:
    """How often consecutive units switch precision (fp32 <-> int8), given their precisions in network order.

    Pass the precisions of measurable units only: a skipped block computes nothing, so
    its neighbours meet directly.
    """
    switches, previous = 0, None
    for precision in precisions:
        switches += previous is not None and precision != previous
        previous = precision
    return switches


def input_shape(spec: NetSpec) -> tuple[int, int, int, int]:
    """The input a whole network (or any prefix of it) is exported and timed with: one image."""
    return (1, spec.in_channels, spec.input_size, spec.input_size)


def conv_token(conv: ConvSpec) -> str:
    """``k3s2o96gdw``: kernel, stride, output channels, groups ('dw' = depthwise); 'lin' = no activation."""
    groups = "dw" if conv.depthwise else str(conv.groups)
    return f"k{conv.kernel}s{conv.stride}o{conv.cout}g{groups}{'' if conv.act else 'lin'}"


def stem_unit(spec: NetSpec, policy: CompressionPolicy) -> Unit:
    """The stem as a latency unit: its key names its shape and precision."""
    precision = policy.get(STEM).precision
    parts = ["stem", f"r{spec.input_size}", f"c{spec.stem.cin}", conv_token(spec.stem), spec.activation, precision]
    return Unit(
        name=STEM,
        kind="stem",
        key="-".join(parts),
        precision=precision,
        input_shape=(1, spec.stem.cin, spec.input_size, spec.input_size),
        activation=spec.activation,
        convs=(spec.stem,),
    )


def block_unit(block: BlockSpec, policy: CompressionPolicy, *, activation: str | None = None) -> Unit:
    """A block as a latency unit: its key names its shape and precision (identity blocks share one key).
    ``activation`` defaults to the block's own; a squeeze-excite adds ``se{reduced}`` to the key."""
    precision = block_precision(block, policy)
    activation = activation or block.activation
    if block.convs:
        kind = "ir" if any(c.depthwise for c in block.convs) else "conv"
        parts = [kind, f"r{block.resolution}", f"c{block.cin}", *map(conv_token, block.convs)]
        if block.shuffle > 1:
            parts.append(f"sh{block.shuffle}")
        if block.se is not None:
            parts.append(f"se{block.se.reduced}")
        parts += [f"res{int(block.residual)}", activation, precision]
        key = "-".join(parts)
    else:
        key = IDENTITY
    return Unit(
        name=block.name,
        kind="block",
        key=key,
        precision=precision,
        input_shape=(1, block.cin, block.resolution, block.resolution),
        activation=activation,
        convs=block.convs,
        block=block,
    )


def head_unit(spec: NetSpec, policy: CompressionPolicy) -> Unit:
    """The head (conv when there is one, pooling, classifier) as a latency unit."""
    precision = policy.get(HEAD).precision
    cin = spec.head.cin if spec.head is not None else spec.classifier_in
    parts = ["head", f"r{spec.head_resolution}", f"c{cin}"]
    if spec.head is not None:
        parts.append(conv_token(spec.head))
    parts += [f"fc{spec.num_classes}", spec.activation, precision]
    return Unit(
        name=HEAD,
        kind="head",
        key="-".join(parts),
        precision=precision,
        input_shape=(1, cin, spec.head_resolution, spec.head_resolution),
        activation=spec.activation,
        convs=(spec.head,) if spec.head is not None else (),
        num_classes=spec.num_classes,
        classifier_in=spec.classifier_in,
    )


def network_units(spec: NetSpec, policy: CompressionPolicy) -> list[Unit]:
    """Stem, every block, head, in network order."""
    blocks = [block_unit(b, policy) for b in spec.blocks]
    return [stem_unit(spec, policy), *blocks, head_unit(spec, policy)]


def measurable_units(spec: NetSpec, policy: CompressionPolicy) -> list[Unit]:
    """The units of :func:`network_units` that compute something (skipped blocks left out)."""
    return [u for u in network_units(spec, policy) if u.measurable]


class _AtPath(nn.Module):
    """Holds ``module`` at ``path`` (e.g. ``stages.1.0``) so exported scopes match the network's layer names."""

    def __init__(self, path: str, module: nn.Module) -> None:
        super().__init__()
        holder: nn.Module = self
        *parents, leaf = path.split(".")
        for part in parents:
            child = nn.Module()
            holder.add_module(part, child)
            holder = child
        holder.add_module(leaf, module)
        self._path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.get_submodule(self._path)(x)


class HeadModule(nn.Module):
    """The network's tail: optional head conv, global average pool, classifier."""

    def __init__(self, head: ConvSpec | None, *, activation: str, classifier_in: int, num_classes: int) -> None:
        super().__init__()
        self.head = ConvBNAct(head, activation) if head is not None else None
        self.classifier = nn.Linear(classifier_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            x = self.head(x)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build_unit_module(unit: Unit) -> nn.Module:
    """A standalone module computing ``unit``, with the same layer names as in the network."""
    if unit.kind == "stem":
        return _AtPath(STEM, ConvBNAct(unit.convs[0], unit.activation))
    if unit.kind == "head":
        head = unit.convs[0] if unit.convs else None
        return HeadModule(
            head, activation=unit.activation, classifier_in=unit.classifier_in, num_classes=unit.num_classes
        )
    if unit.block is None:
        raise ValueError(f"unit {unit.name!r} ({unit.kind}) has no block spec; build units with network_units()")
    return _AtPath(unit.name, Block(unit.block, unit.activation))


def export_unit(unit: Unit, runtime: Runtime = ORT) -> bytes:
    """``unit`` as ``runtime``'s model (ONNX: int8 QDQ; ExecuTorch: pt2e int8) when the unit runs int8,
    calibrated on random data."""
    return runtime.export(build_unit_module(unit), input_shape=unit.input_shape, int8_layers=unit.int8_layers)


def measure_units(
    units: Iterable[Unit],
    *,
    threads: int = 1,
    warmup: int = BLOCK_WARMUP,
    repeats: int = BLOCK_REPEATS,
    runtime: Runtime = ORT,
) -> dict[str, float]:
    """Latency figure (ms) per distinct key in ``runtime``, all units measured interleaved (see :func:`unit_times`)."""
    batch = unit_batch(units, runtime)
    if not batch:
        return {}
    measured = runtime.measure(
        [model for _, model, _ in batch],
        input_shapes=[shape for _, _, shape in batch],
        threads=threads,
        warmup=warmup,
        repeats=repeats,
    )
    return unit_times([key for key, _, _ in batch], measured)


EMPTY = "empty"
_EMPTY_SHAPE = (1, 1, 1, 1)


def unit_batch(units: Iterable[Unit], runtime: Runtime = ORT) -> list[tuple[str, bytes, tuple[int, int, int, int]]]:
    """(key, model in ``runtime``, input shape) per distinct measurable unit, plus the empty model; [] if none."""
    distinct = {u.key: u for u in units if u.measurable}
    if not distinct:
        return []
    batch = [(key, export_unit(u, runtime), u.input_shape) for key, u in distinct.items()]
    return [*batch, (EMPTY, _empty_model(runtime), _EMPTY_SHAPE)]


def unit_times(keys: list[str], measured: list[Measurement]) -> dict[str, float]:
    """Lookup-table times from one interleaved run of a :func:`unit_batch`.

    Each standalone unit pays one session call, which a network pays once in total, so
    the empty model's figure is taken off every unit (the whole-network correction adds
    it back once).
    """
    by_key = dict(zip(keys, measured))
    empty = by_key.pop(EMPTY).figure_ms
    return {key: max(m.figure_ms - empty, 0.0) for key, m in by_key.items()}


class _Empty(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.0  # one trivial node: ONNX Runtime rejects graphs without any


@functools.cache
def _empty_model(runtime: Runtime = ORT) -> bytes:
    return runtime.export(_Empty(), input_shape=_EMPTY_SHAPE)
