"""The chosen policy of a compressed user model, as a file other tools and later sessions read.

``autoc.model-policy/2``: the model reference (how to build it, its classes and input size, the
sha256 of the weights searched on), the keep ratio per channel group and the precision, weight
bits and sparsity per layer (module paths; ``autoc.arch.policy.LayerPolicy``: sparsity written
only where it is not 0, so files from before it read the same), the preprocessing (``autoc.data.preprocessing``: resize, pixel scale, mean/std,
class names; ``/1`` files held only input size, mean and std, and still load), and what the
search measured. ``apply`` compresses a model
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
from autoc.data.preprocessing import Preprocessing
from autoc.errors import DataError, PolicyError
from autoc.files import write_text_atomic
from autoc.modelspace.compress import ModelPolicy, compress
from autoc.schemas import first_problem

SCHEMA = "autoc.model-policy/2"  # what autoc writes
READABLE = ("autoc.model-policy/1", SCHEMA)
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
    # None: not recorded; from a /1 file, the input size, mean and std it held (other fields default)
    preprocessing: Preprocessing | None = None

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean of the inputs (empty when not recorded)."""
        return self.preprocessing.mean if self.preprocessing is not None else ()

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel std of the inputs (empty when not recorded)."""
        return self.preprocessing.std if self.preprocessing is not None else ()

    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, 3, self.reference.input_size, self.reference.input_size)

    def apply(self, model: nn.Module) -> nn.Module:
        """A compressed copy of ``model`` (built from this file's reference, with its weights)."""
        return compress(model, self.policy, example_input=self.example_input())

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON form."""
        pre = self.preprocessing.to_dict() if self.preprocessing is not None else {"input_size": self.reference.input_size}
        return {
            "schema": SCHEMA,
            "model": vars(self.reference).copy(),
            "device": self.device,
            "budget_ms": self.budget_ms,
            "preprocessing": pre,
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
        if not isinstance(data, Mapping) or data.get("schema") not in READABLE:
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
            preprocessing = Preprocessing.from_dict(pre) if pre.get("mean") else None
            return cls(reference=reference, policy=policy, device=str(data["device"]),
                       budget_ms=float(data["budget_ms"]), metrics=dict(data.get("metrics", {})),
                       preprocessing=preprocessing)
        except (KeyError, TypeError, ValueError, AttributeError, DataError) as exc:
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
