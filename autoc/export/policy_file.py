"""best_policy.json (schema ``autoc.policy/1``): everything needed to rebuild a found model."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from autoc.arch.builder import AutocNet, build_model
from autoc.candidate import Candidate
from autoc.compress.quant import apply_quantization
from autoc.errors import PolicyError

SCHEMA = "autoc.policy/1"
METRIC_KEYS = ("accuracy", "latency_ms", "size_bytes", "macs", "params")


@dataclass(frozen=True)
class PolicyFile:
    candidate: Candidate
    space: dict[str, Any]
    metrics: dict[str, float]
    device: str
    study: str
    trial: int
    weights: str | None = None  # path relative to the policy file
    path: Path | None = field(default=None, compare=False)

    def build_model(self, *, weights: str | Path | None = "auto") -> AutocNet:
        """Rebuild the compressed model (pruned shapes, fake quantisers where int8).

        ``weights="auto"`` loads the weights the file names (an error if they are missing);
        ``None`` leaves fresh initial weights; a path loads that state dict.
        """
        model = apply_quantization(build_model(self.candidate.netspec()), self.candidate.policy)
        if weights == "auto":
            if self.weights is None:
                return model
            base = self.path.parent if self.path is not None else Path.cwd()
            weights = base / self.weights
        if weights is not None:
            weights = Path(weights)
            if not weights.is_file():
                raise PolicyError(f"weights file {weights} does not exist; pass weights=None for an untrained model")
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        return model

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema": SCHEMA,
            "space": self.space,
            **self.candidate.to_dict(),
            "metrics": self.metrics,
            "device": self.device,
            "study": self.study,
            "trial": self.trial,
        }
        if self.weights is not None:
            data["weights"] = self.weights
        return data


def write_policy(policy: PolicyFile, path: Path) -> Path:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".policy-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(policy.to_dict(), handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def load_policy(path: str | Path) -> PolicyFile:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist; give the path of a best_policy.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy file {path} is not valid JSON ({exc}); re-export it with autoc search/export") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise PolicyError(f"policy file {path} has schema {found!r}, expected {SCHEMA!r}")
    missing = [k for k in ("space", "arch", "policy", "metrics", "device", "study", "trial") if k not in data]
    if missing:
        raise PolicyError(f"policy file {path} lacks {missing}; it is truncated or not an autoc policy")
    try:
        candidate = Candidate.from_dict(data)
    except PolicyError as exc:
        raise PolicyError(f"policy file {path}: {exc}") from None
    return PolicyFile(
        candidate=candidate,
        space=data["space"],
        metrics=data["metrics"],
        device=str(data["device"]),
        study=str(data["study"]),
        trial=int(data["trial"]),
        weights=data.get("weights"),
        path=path,
    )
