"""The objective of one trial: sample, predict latency, reject over budget, else train and score."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import torch

from autoc.arch.builder import AutocNet
from autoc.candidate import Candidate
from autoc.data.datasets import DatasetSplit, resized
from autoc.evaluate.estimate import Estimate, build_candidate_model, build_from_supernet, estimate_accuracy
from autoc.evaluate.metrics import params_and_macs, size_bytes
from autoc.training.loop import TrainConfig
from autoc.files import save_torch_atomic
from autoc.latency.model import LatencyModel
from autoc.run_paths import stored_path
from autoc.search.results import CORRECT_ATTR
from autoc.search.separation import encode_correct
from autoc.space import SearchSpace, sample_candidate
from autoc.supernet import Supernet

CONSTRAINT = "latency_over_budget_ms"
ENERGY_CONSTRAINT = "energy_over_budget_mj"


@dataclass(frozen=True)
class ObjectiveContext:
    """Everything a trial's objective needs: space, data, latency model, teacher, recipe and budgets."""

    space: SearchSpace
    data: DatasetSplit
    latency: LatencyModel
    teacher: AutocNet
    teacher_logits: torch.Tensor
    teacher_accuracy: float
    finetune: TrainConfig
    budget_ms: float
    weights_dir: Path
    budget_mj: float | None = None
    supernet: Supernet | None = None  # when set, candidates inherit from it rather than from `teacher`
    train_device: torch.device | None = None  # where fine-tuning steps run (None: the CPU)


def run_trial(trial: optuna.trial.Trial, ctx: ObjectiveContext) -> tuple[float, float, float]:
    """Returns (accuracy, latency_ms, size_bytes). Over-budget candidates score accuracy 0 and
    are marked infeasible through the constraint, so samplers learn where the budget lies
    without paying for training."""
    candidate = sample_candidate(ctx.space, trial, num_classes=ctx.data.num_classes)
    spec = candidate.netspec()
    latency = ctx.latency.predict(spec, candidate.policy)
    size = size_bytes(spec, candidate.policy)
    energy = ctx.latency.predict_energy_mj(spec, candidate.policy)
    trial.set_constraint(CONSTRAINT, latency - ctx.budget_ms)
    over_energy = ctx.budget_mj is not None and energy > ctx.budget_mj
    if ctx.budget_mj is not None:
        trial.set_constraint(ENERGY_CONSTRAINT, energy - ctx.budget_mj)
    trial.set_user_attr("candidate", candidate.to_dict())
    trial.set_user_attr("latency_ms", latency)
    trial.set_user_attr("energy_mj", energy)
    trial.set_user_attr("size_bytes", size)
    if latency > ctx.budget_ms or over_energy:
        trial.set_user_attr("feasible", False)
        return 0.0, latency, float(size)

    model, estimate = estimate_candidate_in(ctx, candidate, seed=ctx.finetune.seed + trial.number)
    params, macs = params_and_macs(model, input_size=spec.input_size, in_channels=spec.in_channels)
    weights = save_weights(model, ctx.weights_dir / f"trial-{trial.number}.pt")
    trial.set_user_attr("params", params)
    trial.set_user_attr("macs", macs)
    trial.set_user_attr("estimate_seconds", estimate.seconds)
    trial.set_user_attr("threads", torch.get_num_threads())  # the estimate repeats bit for bit at this count
    # relative to the run directory (weights_dir's parent): a copied or moved run reads its own weights
    trial.set_user_attr("weights", stored_path(weights, run_dir=ctx.weights_dir.parent))
    trial.set_user_attr(CORRECT_ATTR, encode_correct(estimate.correct))
    trial.set_user_attr("feasible", True)
    return estimate.accuracy, latency, float(size)


def estimate_candidate_in(ctx: ObjectiveContext, candidate: Candidate, *, seed: int) -> tuple[AutocNet, Estimate]:
    """The search's accuracy estimate of ``candidate``: weights from the context's supernet or
    teacher, compressed, fine-tuned with KD from the teacher (``seed``: its batch order), evaluated
    on the validation split. Returns the fine-tuned model and the estimate."""
    if ctx.supernet is not None:
        model = build_from_supernet(candidate, supernet=ctx.supernet)
    else:
        model = build_candidate_model(candidate, source=ctx.teacher)
    # The teacher's logits were computed at the space's largest resolution: they are per image,
    # so they serve as KD targets for the same images at the candidate's resolution.
    data = resized(ctx.data, candidate.arch.input_size)
    estimate = estimate_accuracy(
        model,
        train_x=data.train_x,
        train_y=data.train_y,
        val_x=data.val_x,
        val_y=data.val_y,
        teacher_logits=ctx.teacher_logits,
        config=replace(ctx.finetune, seed=seed),
        device=ctx.train_device,
    )
    return model, estimate


def save_weights(model: AutocNet, path: Path) -> Path:
    """``model``'s state dict at ``path``, written atomically (a crash leaves the old file or none;
    a failed write, e.g. a full disk, removes its temp file and is one line)."""
    return save_torch_atomic(path, model.state_dict())
