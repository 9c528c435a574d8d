"""The reference training recipe benchmarks compare against: a candidate trained from scratch.

Every model in a comparison (the 20 of the ranking benchmark, the baselines and the found
candidates) is trained by this one function with one ``TrainConfig``, so differences come
from the architecture and policy, not the recipe.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from autoc.arch.builder import AutocNet, build_model
from autoc.candidate import Candidate
from autoc.compress.quant import apply_quantization
from autoc.compress.sparsity import apply_policy_sparsity
from autoc.data.datasets import DatasetSplit
from autoc.training.loop import TrainConfig, accuracy, train
from autoc.files import write_text_atomic


@dataclass(frozen=True)
class TrainedCandidate:
    """A candidate trained from scratch: the model, its validation accuracy and the seconds it took."""

    model: AutocNet
    accuracy: float
    seconds: float


def scratch_recipe(*, steps: int, seed: int, augment: bool, batch_size: int = 32) -> TrainConfig:
    """The from-scratch recipe (references, baselines, finalists): SGD on the labels, no
    distillation, lr 0.05 cosine."""
    return TrainConfig(steps=steps, batch_size=batch_size, lr=0.05, alpha=0.0, seed=seed, augment=augment)


def train_from_scratch(candidate: Candidate, data: DatasetSplit, *, config: TrainConfig,
                       stop_after: int | None = None, device: torch.device | None = None) -> TrainedCandidate:
    """Random init, the policy's pruned shape, sparsity and fake quantisation (quantisation-aware
    from the start), ``config.steps`` SGD steps on the labels (only the first ``stop_after`` of
    them when given; on ``device``, None: the CPU), accuracy on the whole held-out split."""
    start = time.perf_counter()
    model = build_model(candidate.netspec(), seed=config.seed)
    apply_policy_sparsity(model, candidate.policy)
    apply_quantization(model, candidate.policy)
    train(model, data.train_x, data.train_y, config=config, stop_after=stop_after, device=device)
    acc = accuracy(model, data.val_x, data.val_y)
    return TrainedCandidate(model=model, accuracy=acc, seconds=time.perf_counter() - start)


REFERENCE_FORMAT = "autoc.reference/1"


@dataclass(frozen=True)
class ReferenceResult:
    """A reference accuracy, trained now or read back from the cache."""

    accuracy: float
    seconds: float  # of the training that produced it, also when read from the cache
    cached: bool
    selection_accuracy: float | None = None  # on the selection split, when one was asked for


def reference_accuracy(candidate: Candidate, data: DatasetSplit, *, config: TrainConfig,
                       cache_dir: Path | None, train_missing: bool = True,
                       selection: DatasetSplit | None = None,
                       device: torch.device | None = None) -> ReferenceResult | None:
    """``train_from_scratch``'s accuracy, cached under ``cache_dir`` by (candidate, recipe, data).

    A reference run of a multi-epoch recipe costs many minutes per candidate on a CPU, so every
    benchmark that compares against the same recipe shares the results, and a run cut short
    keeps what it finished. An unreadable cache entry is retrained, never trusted. With
    ``train_missing=False`` a result not in the cache is None instead of trained.

    ``selection`` (``data.selection_as_val()``: the same training items) also scores the same
    trained model on its validation split, e.g. to choose between finalists without looking
    at ``data``'s; a cache entry without that score is trained again.
    """
    if selection is not None and selection.train_fingerprint != data.train_fingerprint:
        raise ValueError("selection must hold the same training items as data (use data.selection_as_val())")
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"reference-{reference_key(candidate, data, config=config)}.json"
        try:
            saved = json.loads(path.read_text())
            if saved.get("format") == REFERENCE_FORMAT:
                chosen = saved.get("selection", {})
                if selection is None or chosen.get("data") == selection.fingerprint:
                    return ReferenceResult(float(saved["accuracy"]), float(saved["seconds"]), cached=True,
                                           selection_accuracy=None if selection is None else float(chosen["accuracy"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    if not train_missing:
        return None
    trained = train_from_scratch(candidate, data, config=config, device=device)
    selected = None if selection is None else accuracy(trained.model, selection.val_x, selection.val_y)
    if path is not None:
        entry = {"format": REFERENCE_FORMAT, "accuracy": trained.accuracy, "seconds": trained.seconds,
                 "recipe": dataclasses.asdict(config), "data": data.fingerprint, "candidate": candidate.to_dict(),
                 "device": str(device or torch.device("cpu"))}  # same recipe anywhere; kept to read its seconds
        if selection is not None:
            entry["selection"] = {"data": selection.fingerprint, "accuracy": selected}
        write_text_atomic(path, json.dumps(entry, indent=1))
    return ReferenceResult(trained.accuracy, trained.seconds, cached=False, selection_accuracy=selected)


def reference_key(candidate: Candidate, data: DatasetSplit, *, config: TrainConfig) -> str:
    """Cache key of a reference run: a hash of the candidate, the training recipe and the data."""
    identity = {"format": REFERENCE_FORMAT, "candidate": candidate.to_dict(), "recipe": dataclasses.asdict(config),
                "data": data.fingerprint}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]

