"""Accuracy estimate of one candidate: inherit weights, prune, fake-quantise, fine-tune with KD, evaluate.

Two weight sources: a trained supernet (``estimate_candidate``: the candidate's sub-network is
extracted, already shaped by its keep ratios) or a briefly trained largest network
(``build_candidate_model``: first channels and centre kernel crops, then L1 pruning).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from autoc.arch.builder import AutocNet, build_model
from autoc.candidate import Candidate
from autoc.compress.quant import apply_quantization
from autoc.compress.sparsity import apply_policy_sparsity
from autoc.compress.transfer import inherit_weights, prune_to
from autoc.errors import OptionError
from autoc.data.datasets import resized
from autoc.data.sampling import stratified_subset
from autoc.training.loop import TrainConfig, correct_predictions, recalibrate_batchnorm, train

if TYPE_CHECKING:
    from autoc.data.datasets import DatasetSplit
    from autoc.supernet import Supernet


@dataclass(frozen=True)
class Estimate:
    """A candidate's estimated accuracy on the validation split and the seconds it took."""

    accuracy: float
    seconds: float
    # Per validation image: was it classified right (bool, in the order evaluated). Lets two
    # estimates on the same images be compared pairwise (autoc.search.separation).
    correct: torch.Tensor | None = dataclasses.field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class EstimateConfig:
    """Per-candidate work on the supernet path, sized so one mbv2-cifar candidate costs about 3 s
    on this project's 2-core machine (README): recalibrate BatchNorm on 2 x 64 training images,
    no fine-tuning (a trained supernet's sub-networks need none to be ranked; each KD step of
    batch 32 costs 0.5-2 s here, so raise ``finetune_steps`` where time allows), evaluate on 1,000
    stratified held-out images (two 256-image estimates of the same networks rank them alike at
    Kendall tau ~0.25, two 1,000-image ones at ~0.6: benchmarks.estimate.repeatability)."""

    finetune_steps: int = 0
    batch_size: int = 32
    lr: float = 0.005
    temperature: float = 4.0
    alpha: float = 0.7
    calibration_batches: int = 2  # of 64 images
    max_eval: int | None = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.finetune_steps < 0 or self.calibration_batches < 1 or (self.max_eval is not None and self.max_eval < 1):
            raise OptionError(
                f"estimate needs finetune_steps >= 0, calibration_batches >= 1 and max_eval >= 1, got "
                f"{self.finetune_steps}, {self.calibration_batches}, {self.max_eval}: set finetune_steps to e.g. 10",
                fields=("finetune_steps", "calibration_batches", "max_eval"),
            )

    def train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.finetune_steps, batch_size=self.batch_size, lr=self.lr,
                           temperature=self.temperature, alpha=self.alpha, seed=self.seed)


def build_candidate_model(candidate: Candidate, *, source: AutocNet | None, seed: int = 0) -> AutocNet:
    """The compressed model of ``candidate``: weights inherited from ``source`` (if given; layers it
    lacks keep their ``seed``-initialised weights), channels pruned by L1 norm, fake quantisers
    attached where the policy says int8."""
    full_spec = candidate.full_netspec()
    full = build_model(full_spec, seed=seed)
    if source is not None:
        inherit_weights(source, full)
    model = prune_to(full, full_spec, candidate.netspec())
    apply_policy_sparsity(model, candidate.policy)
    return apply_quantization(model, candidate.policy)


def build_from_supernet(candidate: Candidate, *, supernet: "Supernet") -> AutocNet:
    """The candidate's sub-network extracted from ``supernet`` (a standalone copy), then its
    policy's magnitude sparsity and fake quantisers applied. BatchNorm is not yet calibrated."""
    model = supernet.extract(candidate)
    apply_policy_sparsity(model, candidate.policy)
    return apply_quantization(model, candidate.policy)


def estimate_candidate(
    candidate: Candidate,
    *,
    supernet: "Supernet",
    data: "DatasetSplit",
    teacher_logits: torch.Tensor | None,
    config: EstimateConfig = EstimateConfig(),
    device: torch.device | None = None,
) -> tuple[AutocNet, Estimate]:
    """Inherit from the supernet, compress, calibrate, fine-tune (KD) and evaluate one candidate.

    ``teacher_logits``: the largest sub-network's logits on ``data.train_x`` ([N, C]), or several
    teachers' stacked ([T, N, C]); see ``autoc.training.loop.teacher_logits_of``.
    Images are resized to the candidate's resolution (``candidate.arch.input_size``) for the
    calibration, fine-tuning and evaluation; the teacher's logits are per image, so they serve at any.
    Returns the fine-tuned model and its estimate (seconds include the extraction).
    """
    start = time.perf_counter()
    data = resized(data, candidate.arch.input_size)
    model = build_from_supernet(candidate, supernet=supernet)
    keep = eval_subset(data.val_y, config.max_eval, seed=config.seed)
    estimate = estimate_accuracy(
        model,
        train_x=data.train_x,
        train_y=data.train_y,
        val_x=data.val_x[keep],
        val_y=data.val_y[keep],
        teacher_logits=teacher_logits,
        config=config.train_config(),
        calibration_batches=config.calibration_batches,
        device=device,
    )
    return model, dataclasses.replace(estimate, seconds=time.perf_counter() - start)


def eval_subset(labels: torch.Tensor, limit: int | None, *, seed: int) -> torch.Tensor:
    """Indices of a seeded class-stratified subset of ``limit`` held-out items (all if None): loaders
    order items by class, so a plain prefix would miss classes."""
    if limit is None or limit >= labels.shape[0]:
        return torch.arange(labels.shape[0])
    chosen = stratified_subset(labels.numpy(), limit, rng=np.random.default_rng([seed, 7]))
    return torch.from_numpy(chosen)


def estimate_accuracy(
    model: AutocNet,
    *,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    config: TrainConfig,
    calibration_batches: int = 8,
    device: torch.device | None = None,
) -> Estimate:
    """Recalibrate BatchNorm, fine-tune ``model`` in place for ``config.steps`` steps, then
    measure validation accuracy. The fine-tuning steps run on ``device`` (None: where the model is)."""
    start = time.perf_counter()
    recalibrate_batchnorm(model, train_x, batches=calibration_batches)
    if config.steps > 0:
        train(model, train_x, train_y, config=config, teacher_logits=teacher_logits, device=device)
    correct = correct_predictions(model, val_x, val_y)
    return Estimate(accuracy=float(correct.float().mean()), seconds=time.perf_counter() - start, correct=correct)
