"""Candidate = architecture + per-layer compression policy: what the search samples and scores."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from autoc.arch.config import ArchConfig
from autoc.arch.netspec import NetSpec, build_netspec
from autoc.arch.policy import CompressionPolicy
from autoc.errors import PolicyError


@dataclass(frozen=True)
class Candidate:
    """An architecture with its compression policy: what a trial builds, estimates and exports."""

    arch: ArchConfig
    policy: CompressionPolicy

    def netspec(self) -> NetSpec:
        """The pruned network plan (validates that tied layers share keep ratios)."""
        return build_netspec(self.arch, self.policy)

    def full_netspec(self) -> NetSpec:
        """The unpruned network plan of the architecture."""
        return build_netspec(self.arch)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "policy": self.policy.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Candidate":
        if not isinstance(data, Mapping) or "arch" not in data or "policy" not in data:
            raise PolicyError("a candidate needs 'arch' and 'policy' entries")
        return cls(arch=ArchConfig.from_dict(data["arch"]), policy=CompressionPolicy.from_dict(data["policy"]))
