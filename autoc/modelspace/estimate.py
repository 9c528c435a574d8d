"""How accurate a compressed user model is after a short distillation from the original."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autoc.data.datasets import DatasetSplit
from autoc.modelspace.compress import ModelPolicy, compress
from autoc.training.loop import TrainConfig, correct_predictions, predict_logits, recalibrate_batchnorm, train


@dataclass(frozen=True)
class PolicyEstimate:
    """A compressed, fine-tuned model's validation accuracy and its per-image results."""

    accuracy: float
    correct: torch.Tensor  # bool per validation image: paired comparisons between policies
    model: nn.Module  # the compressed, fine-tuned model


def original_logits(model: nn.Module, data: DatasetSplit) -> torch.Tensor:
    """The uncompressed model's logits on the training images: the natural teacher's soft targets,
    computed once per search."""
    return predict_logits(model, data.train_x)


def estimate_policy(model: nn.Module, policy: ModelPolicy, data: DatasetSplit, *, config: TrainConfig,
                    teacher_logits: torch.Tensor | None) -> PolicyEstimate:
    """Compress a copy of ``model`` by ``policy``, re-estimate its BatchNorm statistics (and
    activation ranges) on training images, fine-tune it ``config.steps`` steps distilling from
    ``teacher_logits`` and score it on the validation images."""
    compressed = compress(model, policy, example_input=data.train_x[:1])
    recalibrate_batchnorm(compressed, data.train_x)
    if config.steps:
        train(compressed, data.train_x, data.train_y, config=config, teacher_logits=teacher_logits)
    correct = correct_predictions(compressed, data.val_x, data.val_y)
    return PolicyEstimate(accuracy=float(correct.float().mean()), correct=correct, model=compressed.eval())
