"""Accuracy estimate of one candidate: inherit weights, prune, fake-quantise, fine-tune with KD, evaluate."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from autoc.arch.builder import AutocNet, build_model
from autoc.candidate import Candidate
from autoc.compress.quant import apply_quantization
from autoc.compress.transfer import inherit_weights, prune_to
from autoc.evaluate.train import TrainConfig, accuracy, recalibrate_batchnorm, train


@dataclass(frozen=True)
class Estimate:
    accuracy: float
    seconds: float


def build_candidate_model(candidate: Candidate, *, source: AutocNet | None) -> AutocNet:
    """The compressed model of ``candidate``: weights inherited from ``source`` (if given),
    channels pruned by L1 norm, fake quantisers attached where the policy says int8."""
    full_spec = candidate.full_netspec()
    full = build_model(full_spec)
    if source is not None:
        inherit_weights(source, full)
    model = prune_to(full, full_spec, candidate.netspec())
    return apply_quantization(model, candidate.policy)


def estimate_accuracy(
    model: AutocNet,
    *,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    config: TrainConfig,
) -> Estimate:
    """Fine-tune ``model`` in place for ``config.steps`` steps, then measure validation accuracy."""
    start = time.perf_counter()
    recalibrate_batchnorm(model, train_x)
    if config.steps > 0:
        train(model, train_x, train_y, config=config, teacher_logits=teacher_logits)
    acc = accuracy(model, val_x, val_y)
    return Estimate(accuracy=acc, seconds=time.perf_counter() - start)
