"""Energy per inference: an estimate from MACs and bytes moved, per precision.

    energy = sum over convs and the classifier of
                 MACs x pJ/MAC[precision]
               + weight bytes x pJ/weight byte          (weights streamed from DRAM once)
               + activation bytes x pJ/activation byte  (inputs read + outputs written, on chip)
             + static mW x latency

Weights take ``weight_bits`` / 8 bytes when int8 (sub-8-bit weights are stored packed, so
they move fewer bytes), 4 bytes when fp32; int8 activations 1 byte, fp32 4 bytes.

The default coefficients are rough literature values for 45 nm arithmetic and memory
(Horowitz, "Computing's energy problem", ISSCC 2014: fp32 multiply 3.7 pJ + add 0.9 pJ;
int8 multiply 0.2 pJ + int32 add 0.1 pJ; DRAM about 640 pJ per 32-bit word; a small SRAM
about 5 pJ per 32-bit word) with no static power. They are **estimates** that rank
candidates by arithmetic and traffic, not measurements of any device: set a device's own
coefficients in its profile (``energy`` object) to make the figures mean joules there.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from autoc.arch.netspec import HEAD, ConvSpec, NetSpec
from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.errors import DeviceError

_PJ_TO_MJ = 1e-9
_MW_MS_TO_MJ = 1e-3
_ACT_BYTES = {"fp32": 4, "int8": 1}


@dataclass(frozen=True)
class EnergyCoefficients:
    """User-settable energy model of a device; ``estimate`` says the values are not measured there."""

    fp32_pj_per_mac: float = 4.6
    int8_pj_per_mac: float = 0.3
    pj_per_weight_byte: float = 160.0
    pj_per_activation_byte: float = 1.25
    static_mw: float = 0.0
    estimate: bool = True

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            # the caller says where the value came from (a profile field, --set-energy)
            if name != "estimate" and not 0 <= value < math.inf:
                raise DeviceError(f"energy coefficient {name} = {value!r} must be >= 0 and finite")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EnergyCoefficients":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise DeviceError(
                f"unknown energy coefficients {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}"
            )
        values = {k: (bool(v) if k == "estimate" else float(v)) for k, v in data.items()}
        return cls(**values)


@dataclass(frozen=True)
class LayerCost:
    """Work of one layer: multiply-accumulates, weight count, activation elements in + out."""

    name: str
    macs: int
    weights: int
    activations: int


def layer_costs(spec: NetSpec) -> list[LayerCost]:
    """Every conv and the classifier (named ``head`` for its precision, as the exporter does)."""
    costs = [conv_cost(spec.stem, spec.input_size)]
    for block in spec.blocks:
        resolution = block.resolution
        for conv in block.convs:
            costs.append(conv_cost(conv, resolution))
            resolution = -(-resolution // conv.stride)
    if spec.head is not None:
        costs.append(conv_cost(spec.head, spec.head_resolution))
    fc = spec.classifier_in * spec.num_classes
    costs.append(LayerCost(HEAD, fc, fc + spec.num_classes, spec.classifier_in + spec.num_classes))
    return costs


def conv_cost(conv: ConvSpec, resolution: int) -> LayerCost:
    """MACs, weights (with bias) and activations in + out of ``conv`` at input ``resolution``."""
    out_res = -(-resolution // conv.stride)
    weights = conv.cout * (conv.cin // conv.groups) * conv.kernel**2
    return LayerCost(
        conv.name,
        macs=weights * out_res**2,
        weights=weights + conv.cout,
        activations=conv.cin * resolution**2 + conv.cout * out_res**2,
    )


def energy_mj(
    spec: NetSpec, policy: CompressionPolicy, *, latency_ms: float, coefficients: EnergyCoefficients
) -> float:
    """Estimated energy of one inference in mJ (see the module docstring)."""
    pj = 0.0
    for cost in layer_costs(spec):
        layer = policy.get(cost.name)
        pj += cost.macs * _pj_per_mac(layer, coefficients)
        pj += cost.weights * _weight_bytes(layer) * coefficients.pj_per_weight_byte
        pj += cost.activations * _ACT_BYTES[layer.precision] * coefficients.pj_per_activation_byte
    return pj * _PJ_TO_MJ + coefficients.static_mw * latency_ms * _MW_MS_TO_MJ


def _pj_per_mac(layer: LayerPolicy, c: EnergyCoefficients) -> float:
    return c.int8_pj_per_mac if layer.precision == "int8" else c.fp32_pj_per_mac


def _weight_bytes(layer: LayerPolicy) -> float:
    return layer.weight_bits / 8 if layer.precision == "int8" else 4.0
