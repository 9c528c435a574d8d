"""The reference training recipe benchmarks compare against: a candidate trained from scratch.

Every model in a comparison (the 20 of the ranking benchmark, the baselines and the found
candidates) is trained by this one function with one ``TrainConfig``, so differences come
from the architecture and policy, not the recipe.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from autoc.arch.builder import AutocNet, build_model
from autoc.candidate import Candidate
from autoc.compress.quant import apply_quantization
from autoc.compress.sparsity import apply_policy_sparsity
from autoc.evaluate.datasets import DatasetSplit
from autoc.evaluate.train import TrainConfig, accuracy, train


@dataclass(frozen=True)
class TrainedCandidate:
    model: AutocNet
    accuracy: float
    seconds: float


def train_from_scratch(candidate: Candidate, data: DatasetSplit, *, config: TrainConfig) -> TrainedCandidate:
    """Random init, the policy's pruned shape, sparsity and fake quantisation (quantisation-aware
    from the start), ``config.steps`` SGD steps on the labels, accuracy on the whole held-out split."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    model = build_model(candidate.netspec())
    apply_policy_sparsity(model, candidate.policy)
    apply_quantization(model, candidate.policy)
    train(model, data.train_x, data.train_y, config=config)
    acc = accuracy(model, data.val_x, data.val_y)
    return TrainedCandidate(model=model, accuracy=acc, seconds=time.perf_counter() - start)
