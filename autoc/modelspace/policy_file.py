"""The chosen policy of a compressed user model, as a file other tools and later sessions read.

``autoc.model-policy/1``: the model reference (how to build it, its classes and input size, the
sha256 of the weights searched on), the keep ratio per channel group and the precision per layer
(module paths), the preprocessing, and what the search measured. ``apply`` compresses a model
built from the same reference exactly as the search did::

    model = load_model(file.reference.model, num_classes=file.reference.num_classes, weights="w.pt")
    small = load_model_policy("runs/<study>/best_policy.json").apply(model)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from autoc.arch.policy import CompressionPolicy
from autoc.errors import PolicyError
from autoc.files import write_text_atomic
from autoc.modelspace.compress import ModelPolicy, compress
from autoc.schemas import first_problem

SCHEMA = "autoc.model-policy/1"
MODEL_POLICY = "model_policy.schema.json"  # in autoc.schemas


@dataclass(frozen=True)
class ModelReference:
    """Which user model a policy file applies to: its reference, classes, input size and weights hash."""

    model: str
    num_classes: int
    input_size: int
    weights_sha256: str | None = None  # None: trained by autoc compress itself (no weights given)


@dataclass(frozen=True)
class ModelPolicyFile:
    """A compress policy file: the model it applies to, the policy, its device and budget, the metrics."""

    reference: ModelReference
    policy: ModelPolicy
    device: str
    budget_ms: float
    metrics: Mapping[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, 3, self.reference.input_size, self.reference.input_size)

    def apply(self, model: nn.Module) -> nn.Module:
        """A compressed copy of ``model`` (built from this file's reference, with its weights)."""
        return compress(model, self.policy, example_input=self.example_input())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "model": vars(self.reference).copy(),
            "device": self.device,
            "budget_ms": self.budget_ms,
            "preprocessing": {"input_size": self.reference.input_size, "mean": list(self.mean), "std": list(self.std)},
            "keep": dict(self.policy.keep),
            "channel_multiple": self.policy.multiple,
            "layers": self.policy.layers.to_dict(),
            "metrics": dict(self.metrics),
        }

    def write(self, path: Path) -> Path:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        return write_text_atomic(Path(path), text)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "policy") -> "ModelPolicyFile":
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, Mapping) else type(data).__name__
            raise PolicyError(f"{source} is not a {SCHEMA} file (schema {found!r}): pass a best_policy.json "
                              "written by autoc compress")
        problem = first_problem(MODEL_POLICY, data)
        if problem is not None:
            raise PolicyError(f"{source}: {problem}: fix the field or write the file again with autoc compress")
        try:
            model = data["model"]
            reference = ModelReference(model=str(model["model"]), num_classes=int(model["num_classes"]),
                                       input_size=int(model["input_size"]),
                                       weights_sha256=model.get("weights_sha256"))
            keep = {str(k): float(v) for k, v in data["keep"].items()}
            policy = ModelPolicy(keep=tuple(sorted(keep.items())),
                                 layers=CompressionPolicy.from_dict(data["layers"]),
                                 multiple=int(data.get("channel_multiple", 1)))
            pre = data.get("preprocessing", {})
            return cls(reference=reference, policy=policy, device=str(data["device"]),
                       budget_ms=float(data["budget_ms"]), metrics=dict(data.get("metrics", {})),
                       mean=tuple(pre.get("mean", ())), std=tuple(pre.get("std", ())))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PolicyError(f"{source} is damaged ({type(exc).__name__}: {exc}): write it again with autoc "
                              "compress") from None


def load_model_policy(path: str | Path) -> ModelPolicyFile:
    """Read a compress policy file; a missing or malformed one is a PolicyError."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist: pass runs/<study>/best_policy.json") from None
    except (OSError, ValueError) as exc:
        raise PolicyError(f"policy file {path} is not readable JSON ({exc}): write it again with autoc compress") \
            from None
    return ModelPolicyFile.from_dict(data, source=f"policy file {path}")
