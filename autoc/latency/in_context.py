"""A unit's cost inside a network, learnt per unit from network prefixes.

An isolated unit pays what it would not in a network (a layout reorder into and out of the
runtime's blocked format, Q/DQ at both ends when int8, a cold start) and misses what only a
network has, and how much differs per unit: by its size, its activations' size and its
precision. The whole-network correction sees only a few dozen network totals, too few to
learn that per unit. Calibration therefore also times every prefix of each fitting network
(stem; stem + first block; ...): the difference between consecutive prefixes is what the
unit that ends the longer one costs *in context* (the head's: the whole network minus the
longest prefix), hundreds of targets per calibration. A linear model of in-context time
from the unit's isolated time and a few features is fitted on them and applied to every
unit before the whole-network correction (``Correction``), which is then fitted on the
in-context sums. Measured on this project's host (benchmarks.latency.in_context, two
dumps of 40 prefixed + 100 held-out networks): held-out Kendall tau 0.887 -> 0.909 and
0.887 -> 0.907, MAPE 2.50 -> 2.20% and 2.80 -> 2.20%.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from autoc.arch.builder import AutocNet, build_model
from autoc.arch.netspec import NetSpec
from autoc.arch.policy import CompressionPolicy
from autoc.onnx.export import policy_int8_layers
from autoc.latency.blocks import Unit, input_shape
from autoc.latency.runtimes import ORT, Runtime

# Feature names in coefficient order; a profile stores them so a reader can check the order.
FEATURES = (
    "isolated_ms",  # the lookup-table time
    "isolated_ms_int8",  # the same, for int8 units only (int8 units scale apart)
    "unit",  # a fixed part per unit
    "int8",
    "switch",  # precision differs from the previous measured unit's
    "input_elements_1e5",
    "output_elements_1e5",
    "head",
    "stem",
    "residual",
    # A switch converts the tensor between the units (Q or DQ, a layout transpose or reorder): its cost
    # grows with that tensor. Measured (benchmarks.latency.in_context, six dumps): +25 to +50 µs
    # per 10^5 elements in every one, held-out MAPE lower in all six (mean 2.47 -> 2.36%).
    "switch_input_elements_1e5",
)
# Profiles written before a feature was added store a prefix of FEATURES: the same model with zero
# weight on the features they lack.
_OLDEST_FEATURES = 10
# Below this many in-context targets per coefficient the model is not fitted (plain correction).
MIN_UNITS_PER_FEATURE = 10


@dataclass(frozen=True)
class InContextModel:
    """``in-context ms = sum(coefficients * features(unit))``, features as FEATURES."""

    coefficients: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.coefficients) != len(FEATURES) or not all(math.isfinite(c) for c in self.coefficients):
            raise ValueError(f"an in-context model needs {len(FEATURES)} finite coefficients ({', '.join(FEATURES)})")

    def unit_ms(self, unit: Unit, *, isolated_ms: float, int8: bool, previous_int8: bool | None) -> float:
        """``unit``'s time in a network; ``int8``: it runs int8 kernels; ``previous_int8``: the
        previous measured unit's precision (None for the first). Never below zero."""
        return self.ms_of(unit_features(unit, isolated_ms=isolated_ms, int8=int8, previous_int8=previous_int8))

    def ms_of(self, features: Sequence[float]) -> float:
        """In-context ms of a unit with ``features`` (:func:`unit_features`); never below zero."""
        return max(float(np.dot(self.coefficients, features)), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "coefficients": list(self.coefficients)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InContextModel":
        features = list(data.get("features", []))
        if not (_OLDEST_FEATURES <= len(features) <= len(FEATURES) and features == list(FEATURES[: len(features)])):
            raise ValueError(f"in_context.features must be {list(FEATURES)}, got {data.get('features')!r}")
        coefficients = [float(c) for c in data["coefficients"]]
        if len(coefficients) != len(features):
            raise ValueError(f"in_context has {len(coefficients)} coefficients for {len(features)} features")
        return cls(coefficients=tuple(coefficients) + (0.0,) * (len(FEATURES) - len(features)))


def unit_features(unit: Unit, *, isolated_ms: float, int8: bool, previous_int8: bool | None) -> list[float]:
    """The features of the in-context model for ``unit``: its isolated time, precision and switch, sizes,
    kind and residual."""
    channels, size = unit.input_shape[1], unit.input_shape[2]
    out_channels, out_size = channels, size
    for conv in unit.convs:
        out_channels, out_size = conv.cout, -(-out_size // conv.stride)
    residual = unit.block is not None and unit.block.residual
    switch = previous_int8 is not None and previous_int8 != int8
    return [
        isolated_ms,
        isolated_ms * int8,
        1.0,
        float(int8),
        float(switch),
        channels * size * size / 1e5,
        out_channels * out_size * out_size / 1e5,
        float(unit.kind == "head"),
        float(unit.kind == "stem"),
        float(residual),
        switch * channels * size * size / 1e5,
    ]


class _Prefix(nn.Module):
    """The stem and the first ``blocks`` blocks of ``net`` under the network's own layer names
    (only those: the exporter maps every conv the module holds to a graph node)."""

    def __init__(self, net: AutocNet, blocks: int) -> None:
        super().__init__()
        self.stem = net.stem
        self.stages = nn.ModuleList()
        for stage in net.stages:
            if blocks <= 0:
                break
            kept = nn.ModuleList(list(stage)[:blocks])
            self.stages.append(kept)
            blocks -= len(kept)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            for block in stage:
                x = block(x)
        return x


def prefix_models(spec: NetSpec, policy: CompressionPolicy, units: Sequence[Unit], runtime: Runtime = ORT) -> list[bytes]:
    """``runtime``'s model (default ONNX) of every prefix of the network that ends with a measurable unit other than the head:
    one per such unit, in network order (``units``: ``network_units(spec, policy)``)."""
    net = build_model(spec)
    int8 = policy_int8_layers(spec, policy)
    models = []
    for blocks, unit in enumerate(units[:-1]):  # units[0] is the stem: prefix of 0 blocks
        if not unit.measurable:
            continue
        prefix = _Prefix(net, blocks)
        held = {name for name, _ in prefix.named_modules()}
        models.append(runtime.export(prefix, input_shape=input_shape(spec), int8_layers=int8 & held))
    return models


def in_context_targets(
    units: Sequence[Unit], *, prefix_ms: Sequence[float], network_ms: float, empty_ms: float
) -> list[float]:
    """In-context ms of each measurable unit (order of ``units``), from its network's prefix
    times (:func:`prefix_models`' order) and whole time; all include one session call (``empty_ms``)."""
    ends = [*prefix_ms, network_ms]
    measurable = [u for u in units if u.measurable]
    if len(ends) != len(measurable):
        raise ValueError(f"{len(prefix_ms)} prefix times for {len(measurable) - 1} prefixes")
    return [end - start for start, end in zip([empty_ms, *ends[:-1]], ends)]


def fit_in_context(rows: Sequence[tuple[list[float], float]]) -> InContextModel | None:
    """Least squares of in-context ms on the features; None with too few units to fit or an implausible fit."""
    if len(rows) < MIN_UNITS_PER_FEATURE * len(FEATURES):
        return None
    x = np.array([features for features, _ in rows], dtype=np.float64)
    y = np.array([target for _, target in rows], dtype=np.float64)
    coefficients, *_ = np.linalg.lstsq(x, y, rcond=None)
    # Implausible on any machine (noise swamped the prefix differences): a unit's in-network time
    # must grow with its table time, for fp32 and int8 units alike.
    if not np.all(np.isfinite(coefficients)) or coefficients[0] <= 0 or coefficients[0] + coefficients[1] <= 0:
        return None
    return InContextModel(coefficients=tuple(float(c) for c in coefficients))
