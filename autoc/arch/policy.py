"""Per-layer compression policy: keep ratio of output channels, precision and bit widths."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from autoc.errors import PolicyError

PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class LayerPolicy:
    """How one conv layer is compressed.

    ``precision`` is what the device runs (fp32 or int8 kernels). Weight bits below 8 are
    stored packed and change size and accuracy, not latency.
    """

    keep_ratio: float = 1.0
    precision: str = "fp32"
    weight_bits: int = 32
    act_bits: int = 32
    sparsity: float = 0.0  # share of weights zeroed by magnitude (unstructured); saves size, not latency

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise PolicyError(f"sparsity {self.sparsity} is outside [0, 1); use e.g. 0.5 (half the weights zeroed) or 0")
        if not 0.0 < self.keep_ratio <= 1.0:
            raise PolicyError(f"keep_ratio {self.keep_ratio} is outside (0, 1]; use e.g. 0.5 or 1.0")
        if self.precision not in PRECISIONS:
            raise PolicyError(f"precision {self.precision!r} is unknown; use one of {PRECISIONS}")
        if self.precision == "fp32" and (self.weight_bits, self.act_bits) != (32, 32):
            raise PolicyError(
                f"fp32 layers keep 32-bit weights and activations, got weight_bits={self.weight_bits}, "
                f"act_bits={self.act_bits}; use precision 'int8' to quantise"
            )
        if self.precision == "int8" and (not 2 <= self.weight_bits <= 8 or self.act_bits != 8):
            raise PolicyError(
                f"int8 layers take weight_bits in 2..8 and act_bits 8, got {self.weight_bits}/{self.act_bits}"
            )

    @property
    def quantized(self) -> bool:
        return self.precision != "fp32"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "keep_ratio": self.keep_ratio,
            "precision": self.precision,
            "weight_bits": self.weight_bits,
            "act_bits": self.act_bits,
        }
        if self.sparsity:  # written only when used, so dense policies keep their original form
            out["sparsity"] = self.sparsity
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LayerPolicy":
        unknown = set(data) - {"keep_ratio", "precision", "weight_bits", "act_bits", "sparsity"}
        if unknown:
            raise PolicyError(
                f"unknown layer policy keys {sorted(unknown)}; allowed: keep_ratio, precision, weight_bits, act_bits, sparsity"
            )
        return cls(
            keep_ratio=float(data.get("keep_ratio", 1.0)),
            precision=str(data.get("precision", "fp32")),
            weight_bits=int(data.get("weight_bits", 32)),
            act_bits=int(data.get("act_bits", 32)),
            sparsity=float(data.get("sparsity", 0.0)),
        )


FP32 = LayerPolicy()


@dataclass(frozen=True)
class CompressionPolicy:
    """Layer name -> LayerPolicy; layers not listed stay uncompressed fp32."""

    layers: tuple[tuple[str, LayerPolicy], ...] = field(default_factory=tuple)

    @classmethod
    def from_mapping(cls, layers: Mapping[str, LayerPolicy]) -> "CompressionPolicy":
        return cls(layers=tuple(sorted(layers.items())))

    @cached_property
    def _by_name(self) -> dict[str, LayerPolicy]:
        return dict(self.layers)

    def get(self, name: str) -> LayerPolicy:
        return self._by_name.get(name, FP32)

    def to_dict(self) -> dict[str, Any]:
        return {name: policy.to_dict() for name, policy in self.layers}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CompressionPolicy":
        if not isinstance(data, Mapping):
            raise PolicyError("policy must be a mapping of layer name to {keep_ratio, precision, weight_bits, act_bits}")
        return cls.from_mapping({str(k): LayerPolicy.from_dict(v) for k, v in data.items()})
