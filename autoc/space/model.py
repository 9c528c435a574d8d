"""Validated search space: frozen dataclasses that mirror the YAML format (see ``autoc.space``).

Every choice list is a tuple in the order the file gave it: Optuna's categorical
distributions depend on that order, so it is part of the space's identity.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autoc.arch.config import SE_RATIO, ArchConfig, BlockOp, StageConfig
from autoc.space import extremes

if TYPE_CHECKING:
    from autoc.candidate import Candidate


@dataclass(frozen=True)
class StemSpace:
    """The stem's choices: its widths and stride."""

    widths: tuple[int, ...]
    stride: int

    def to_dict(self) -> dict[str, Any]:
        return {"width": list(self.widths), "stride": self.stride}


@dataclass(frozen=True)
class StageSpace:
    """One stage: a depth and a width choice, then one op per block (``per_block``) or per stage."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    stride: int
    ops: tuple[BlockOp, ...]
    per_block: bool = True
    activation: str | None = None  # overrides the space's; None: the space's
    se: bool = False  # squeeze-excite in every inverted-residual block of the stage
    se_ratio: float = SE_RATIO

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops)

    def to_dict(self) -> dict[str, Any]:
        # Canonical form: explicit block names, whichever form the file used.
        return {
            "depth": list(self.depths),
            "width": list(self.widths),
            "stride": self.stride,
            "blocks": list(self.op_names),
            "per_block": self.per_block,
            # Only when set, so spaces without them keep their fingerprint.
            **({"activation": self.activation} if self.activation is not None else {}),
            **({"se": True} if self.se else {}),
            **({"se_ratio": self.se_ratio} if self.se and self.se_ratio != SE_RATIO else {}),
        }

    def stage_config(self, width: int, ops: tuple[BlockOp, ...]) -> StageConfig:
        """The architecture's stage of this space with ``width`` and ``ops``."""
        return StageConfig(width=width, stride=self.stride, ops=ops, activation=self.activation,
                           se=self.se, se_ratio=self.se_ratio)


@dataclass(frozen=True)
class HeadSpace:
    """Width choices of the 1x1 head conv; a 0 choice means no head conv."""

    widths: tuple[int, ...] = (0,)

    @property
    def present(self) -> bool:
        return any(w > 0 for w in self.widths)

    def to_dict(self) -> dict[str, Any]:
        return {"width": list(self.widths)}


@dataclass(frozen=True)
class CompressionSpace:
    """The per-layer compression choices: keep ratios, precisions and int8 weight bits."""

    keep_ratios: tuple[float, ...] = (1.0,)
    precisions: tuple[str, ...] = ("fp32",)
    weight_bits: tuple[int, ...] = (8,)  # for int8 layers; fp32 layers are always 32/32

    def to_dict(self) -> dict[str, Any]:
        return {
            "keep_ratio": list(self.keep_ratios),
            "precision": list(self.precisions),
            "weight_bits": list(self.weight_bits),
        }


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: input, stem, stages, head and compression choices."""

    name: str
    resolutions: tuple[int, ...]  # input sizes a candidate may take; one value: not searched
    stem: StemSpace
    stages: tuple[StageSpace, ...]
    head: HeadSpace = HeadSpace()
    compression: CompressionSpace = CompressionSpace()
    in_channels: int = 3
    classes: int = 10
    activation: str = "relu6"
    expand_at_e1: bool = False
    source: str = field(default="<dict>", compare=False)  # file it came from, for messages

    @property
    def input_size(self) -> int:
        """The largest resolution: what the dataset is loaded at and the teacher trains on (a
        candidate at a smaller one gets the images resized down, ``autoc.data.datasets.resized``)."""
        return max(self.resolutions)

    def to_dict(self) -> dict[str, Any]:
        """The validated content in the YAML format; ``parse_space`` reads it back to an equal space."""
        # One resolution is written as input_size, so spaces from before searched resolutions keep their fingerprint.
        size = {"input_size": self.resolutions[0]} if len(self.resolutions) == 1 else {"resolution": list(self.resolutions)}
        return {
            "name": self.name,
            **size,
            "in_channels": self.in_channels,
            "classes": self.classes,
            "activation": self.activation,
            "expand_at_e1": self.expand_at_e1,
            "stem": self.stem.to_dict(),
            "stages": [stage.to_dict() for stage in self.stages],
            "head": self.head.to_dict(),
            "compression": self.compression.to_dict(),
        }

    def fingerprint(self) -> str:
        """sha256 of the canonical content, without the name: renaming a space must not orphan a study."""
        content = self.to_dict()
        del content["name"]
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def largest_arch(self, num_classes: int | None = None) -> ArchConfig:
        """The teacher and weight source: contains every candidate in depth, width, kernel, expansion."""
        return extremes.largest_arch(self, num_classes=num_classes)

    def minimal_candidates(self, num_classes: int | None = None) -> list["Candidate"]:
        """Candidates that together hold the cheapest one under an additive block-latency model."""
        return extremes.minimal_candidates(self, num_classes=num_classes)

    def maximal_candidates(self, num_classes: int | None = None) -> list["Candidate"]:
        """Candidates that together hold the slowest one under an additive block-latency model."""
        return extremes.maximal_candidates(self, num_classes=num_classes)
