"""Architecture description: plain frozen dataclasses that round-trip through JSON."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoc.errors import PolicyError

ACTIVATIONS = ("relu6", "relu", "hswish")
SE_RATIO = 0.25  # squeeze-excite: reduced width as a share of the hidden width (MobileNetV3)


def check_activation(name: object, *, where: str = "activation") -> str:
    """``name`` if it is a known activation, else a one-line PolicyError naming the allowed ones."""
    if name not in ACTIVATIONS:
        raise PolicyError(f"{where}: activation {name!r} is not known; use one of {list(ACTIVATIONS)}")
    return str(name)


@dataclass(frozen=True)
class BlockOp:
    """One searchable block: an inverted residual (kernel, expansion, groups) or a skip."""

    kernel: int = 3
    expansion: int = 1
    groups: int = 1
    skip: bool = False

    @property
    def name(self) -> str:
        if self.skip:
            return "skip"
        suffix = f"_g{self.groups}" if self.groups > 1 else ""
        return f"k{self.kernel}_e{self.expansion}{suffix}"

    @classmethod
    def parse(cls, name: str) -> "BlockOp":
        """Parse names like ``k3_e6``, ``k5_e1_g2`` or ``skip``."""
        if name == "skip":
            return cls(skip=True)
        parts = name.split("_")
        try:
            if len(parts) not in (2, 3) or parts[0][0] != "k" or parts[1][0] != "e":
                raise ValueError
            kernel, expansion = int(parts[0][1:]), int(parts[1][1:])
            groups = 1
            if len(parts) == 3:
                if parts[2][0] != "g":
                    raise ValueError
                groups = int(parts[2][1:])
        except (ValueError, IndexError):
            raise PolicyError(
                f"block name {name!r} is not valid; use 'kK_eE', 'kK_eE_gG' or 'skip' (e.g. 'k3_e6')"
            ) from None
        return cls(kernel=kernel, expansion=expansion, groups=groups)


@dataclass(frozen=True)
class StageConfig:
    """One stage: ``depth`` blocks of ``width`` output channels, the first with ``stride``.

    ``activation`` overrides the network's (None: the network's); ``se`` adds squeeze-excite
    with a reduced width of ``se_ratio`` x the hidden width to each inverted-residual block."""

    width: int
    stride: int
    ops: tuple[BlockOp, ...]
    activation: str | None = None
    se: bool = False
    se_ratio: float = SE_RATIO

    @property
    def depth(self) -> int:
        return len(self.ops)

    def to_dict(self, default_activation: str) -> dict[str, Any]:
        """Serialised form; per-stage keys only when they differ from the defaults, so plain
        stages serialise as before."""
        out: dict[str, Any] = {"width": self.width, "stride": self.stride, "ops": [op.name for op in self.ops]}
        if self.activation is not None and self.activation != default_activation:
            out["activation"] = self.activation
        if self.se:
            out["se"] = True
            if self.se_ratio != SE_RATIO:
                out["se_ratio"] = self.se_ratio
        return out


@dataclass(frozen=True)
class ArchConfig:
    """A whole network: stem, stages, optional 1x1 head conv, classifier."""

    input_size: int
    in_channels: int
    num_classes: int
    stem_width: int
    stem_stride: int
    stages: tuple[StageConfig, ...]
    head_width: int  # 0 means no 1x1 head conv before pooling
    activation: str = "relu6"
    expand_at_e1: bool = False

    def stage_activation(self, stage: int) -> str:
        """The activation stage ``stage``'s blocks use: its own, else the network's."""
        return self.stages[stage].activation or self.activation

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "stem_width": self.stem_width,
            "stem_stride": self.stem_stride,
            "head_width": self.head_width,
            "activation": self.activation,
            "expand_at_e1": self.expand_at_e1,
            "stages": [s.to_dict(self.activation) for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArchConfig":
        try:
            activation = check_activation(data.get("activation", "relu6"))
            stages = tuple(
                StageConfig(
                    width=int(s["width"]),
                    stride=int(s["stride"]),
                    ops=tuple(BlockOp.parse(name) for name in s["ops"]),
                    activation=_stage_activation(s.get("activation"), activation, i),
                    se=bool(s.get("se", False)),
                    se_ratio=float(s.get("se_ratio", SE_RATIO)),
                )
                for i, s in enumerate(data["stages"])
            )
            return cls(
                input_size=int(data["input_size"]),
                in_channels=int(data["in_channels"]),
                num_classes=int(data["num_classes"]),
                stem_width=int(data["stem_width"]),
                stem_stride=int(data["stem_stride"]),
                stages=stages,
                head_width=int(data["head_width"]),
                activation=activation,
                expand_at_e1=bool(data.get("expand_at_e1", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(
                f"architecture description is incomplete or malformed ({exc!r}); "
                "it needs input_size, in_channels, num_classes, stem_width, stem_stride, "
                "head_width and stages[{width, stride, ops}]"
            ) from None


def _stage_activation(value: object, default: str, stage: int) -> str | None:
    """A stage's activation as StageConfig holds it: None when absent or equal to the network's."""
    if value is None:
        return None
    name = check_activation(value, where=f"stages[{stage}].activation")
    return None if name == default else name
