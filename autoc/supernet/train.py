"""Supernet training with the sandwich rule and in-place distillation (BigNAS / Once-for-All).

Each step trains, on one batch, the largest sub-network on the labels, then the smallest and
``random_subnets`` random ones on the largest's soft targets (detached) mixed with the labels;
their gradients add up in the shared weights before one optimiser step. Training the two
ends every step keeps both the biggest and the cheapest candidates good, which is what makes
inherited weights rank candidates without long fine-tuning.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from autoc.compress.distill import distillation_loss
from autoc.errors import BudgetError
from autoc.space import SearchSpace
from autoc.supernet.elastic import Supernet
from autoc.supernet.subnets import random_candidate, smallest_candidate


@dataclass(frozen=True)
class SupernetConfig:
    steps: int = 150
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    random_subnets: int = 2
    temperature: float = 1.0
    alpha: float = 0.5  # weight of the in-place distillation term for the non-largest sub-networks
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.random_subnets < 0:
            raise BudgetError(
                f"supernet training needs steps >= 1, batch_size >= 1 and random_subnets >= 0, got steps={self.steps}, "
                f"batch_size={self.batch_size}, random_subnets={self.random_subnets}; use e.g. --steps 150"
            )


def train_supernet(
    supernet: Supernet,
    space: SearchSpace,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    config: SupernetConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> float:
    """Train in place; returns the largest sub-network's mean loss over the last 10 steps."""
    num_classes = supernet.num_classes
    rng = random.Random(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    largest = supernet.largest_subnet()
    smallest = smallest_candidate(space, num_classes=num_classes).netspec()
    optimizer = torch.optim.SGD(supernet.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    supernet.train()
    n = inputs.shape[0]
    order, cursor = torch.randperm(n, generator=generator), 0
    recent: list[float] = []
    for step in range(config.steps):
        if cursor + config.batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        index = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        for group in optimizer.param_groups:
            group["lr"] = 0.5 * config.lr * (1 + math.cos(math.pi * step / config.steps))
        x, y = inputs[index], labels[index]
        optimizer.zero_grad(set_to_none=True)
        others = [smallest] + [
            random_candidate(space, rng, num_classes=num_classes).netspec() for _ in range(config.random_subnets)
        ]
        # Losses are averaged over the sandwich: summed, every shared weight would see a step
        # len(others) + 1 times larger than single-network training at the same lr (it diverged).
        share = 1.0 / (len(others) + 1)
        logits = supernet(x, subnet=largest)
        loss = F.cross_entropy(logits, y)
        (loss * share).backward()
        teacher = logits.detach()
        for subnet in others:
            student = supernet(x, subnet=subnet)
            kd = distillation_loss(student, teacher, y, temperature=config.temperature, alpha=config.alpha)
            (kd * share).backward()
        optimizer.step()
        recent = (recent + [float(loss.detach())])[-10:]
        if on_step is not None:
            on_step(step, recent[-1])
    return sum(recent) / len(recent)
