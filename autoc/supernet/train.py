"""Supernet training with the sandwich rule and in-place distillation (BigNAS / Once-for-All).

Each step trains, on one batch, the largest sub-network on the labels, then the smallest and
``random_subnets`` random ones on the largest's soft targets (detached) mixed with the labels;
their gradients add up in the shared weights before one optimiser step. Training the two
ends every step keeps both the biggest and the cheapest candidates good, which is what makes
inherited weights rank candidates without long fine-tuning.

Optionally the largest network is first trained alone for ``largest_steps`` (Once-for-All's
progressive shrinking starts from a trained full network): a short sandwich run from random
weights ranks small sub-networks above large ones, because small networks learn faster early.
With ``progressive`` the sandwich steps run in phases that make one more dimension elastic
each (kernel, depth, expansion, width), so the shared weights adapt to one kind of change at a
time instead of to every combination at once.

``sampling="uniform"`` replaces the sandwich with single-path uniform sampling (SPOS, Guo et
al. 2020): each step trains ``random_subnets`` random sub-networks on the labels alone, with no
largest, no smallest and no distillation, so no sub-network is favoured by being trained more
often than the rest (the sandwich trains the smallest one every step, and it then gets the
highest estimate of all).

Elastic resolution (a space with ``resolution: [..]``): the resolution is one of a sub-network's
choices (``candidate.arch.input_size``), drawn with the rest, and each sub-network trains on the
step's batch resized to its own resolution (``autoc.data.datasets.resize_images``, the resize
the search scores candidates with). In the sandwich the largest network runs at the largest
resolution and the smallest at the smallest, as BigNAS does, rather than Once-for-All's one
resolution per batch for every sub-network: here a candidate's resolution is part of what is
searched and scored, so each sub-network trains at the resolution it will be scored at, and the
largest's soft targets are per image, so they teach the same images at any resolution. The
largest-first stage trains the largest network at the largest resolution.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch.nn import functional as F

from autoc.arch.netspec import NetSpec
from autoc.compress.distill import distillation_loss
from autoc.data.datasets import resize_images
from autoc.training.compute import trained_on
from autoc.training.loop import crop_and_flip
from autoc.errors import OptionError
from autoc.space import SearchSpace
from autoc.supernet.channel_order import sort_channels_by_importance
from autoc.supernet.elastic import Supernet
from autoc.supernet.subnets import ALL_DIMENSIONS, DIMENSIONS, random_candidate, smallest_candidate

SAMPLINGS = ("sandwich", "uniform")


@dataclass(frozen=True)
class SupernetConfig:
    """The supernet training recipe; its text (``str``) is part of the supernet cache key."""

    steps: int = 150
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    random_subnets: int = 2
    temperature: float = 1.0
    alpha: float = 0.5  # weight of the in-place distillation term for the non-largest sub-networks
    seed: int = 0
    largest_steps: int = 0  # steps training the largest network alone before the sandwich steps
    largest_lr: float = 0.05
    augment: bool = False  # random crop and flip per image (CIFAR-style data)
    sort_channels: bool = False  # reorder channels by importance before the sandwich stage (Once-for-All)
    # Progressive shrinking (Once-for-All): the sandwich steps in equal phases that make kernel,
    # then depth, then expansion, then width elastic (each phase adds one, the rest stay largest).
    progressive: bool = False
    final_phase_share: float | None = None  # progressive: the all-elastic phase's share of the steps (None: equal)
    sampling: str = "sandwich"  # or "uniform": random sub-networks only, on the labels (see the module doc)

    def __post_init__(self) -> None:
        for name, minimum, example in (("steps", 1, 150), ("batch_size", 1, 32), ("random_subnets", 0, 2),
                                       ("largest_steps", 0, 100)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise OptionError(f"{name} must be a whole number >= {minimum}, got {value!r}: set {name} to e.g. "
                                  f"{example}", fields=(name,))
        if self.sampling not in SAMPLINGS:
            raise OptionError(f"sampling {self.sampling!r} is unknown: set sampling to one of {', '.join(SAMPLINGS)}",
                              fields=("sampling",))
        if self.sampling == "uniform" and self.random_subnets < 1:
            raise OptionError("uniform sampling trains random sub-networks only: set random_subnets >= 1 (e.g. 1)",
                              fields=("random_subnets",))
        if self.final_phase_share is not None and not 0 < self.final_phase_share <= 1:
            raise OptionError(f"final_phase_share (the final phase's share of the steps) must be in (0, 1], got "
                              f"{self.final_phase_share}: set final_phase_share to e.g. 0.5", fields=("final_phase_share",))

    @property
    def total_steps(self) -> int:
        return self.largest_steps + self.steps

    def __str__(self) -> str:
        # The cache key: written as before when the newer options are off, so caches stay valid.
        text = repr(self)
        if (self.largest_steps, self.augment, self.sort_channels, self.progressive, self.sampling) == (
                0, False, False, False, "sandwich"):
            text = text.split(", largest_steps=")[0] + ")"
        else:
            for name, off in (("sort_channels", False), ("progressive", False), ("final_phase_share", None),
                              ("sampling", "sandwich")):
                if getattr(self, name) == off:
                    text = text.replace(f", {name}={off!r}", "")
        return text

    def phases(self) -> list[tuple[frozenset[str], int]]:
        """(elastic dimensions, steps) of each sandwich phase: one phase of all dimensions unless
        progressive; progressive phases split the steps as evenly as possible, or give the last
        (all-elastic) phase ``final_phase_share`` of them and split the rest evenly."""
        if not self.progressive:
            return [(ALL_DIMENSIONS, self.steps)]
        count = len(DIMENSIONS)
        final = self.steps // count if self.final_phase_share is None else round(self.steps * self.final_phase_share)
        early = self.steps - final
        return [(frozenset(DIMENSIONS[: i + 1]), early * (i + 1) // (count - 1) - early * i // (count - 1))
                for i in range(count - 1)] + [(ALL_DIMENSIONS, final)]


def train_supernet(
    supernet: Supernet,
    space: SearchSpace,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    config: SupernetConfig,
    on_step: Callable[[int, float], None] | None = None,
    device: torch.device | None = None,
) -> float:
    """Train in place; returns the largest sub-network's mean loss over the last 10 steps (under uniform
    sampling, the random sub-networks').

    ``on_step`` sees steps numbered over both stages (0 .. ``config.total_steps`` - 1).
    ``device``: where the steps run; the supernet comes back to its own device after."""
    with trained_on(supernet, device) as target:
        return _train_steps(supernet, space, inputs, labels, config=config, on_step=on_step, target=target)


def _train_steps(supernet: Supernet, space: SearchSpace, inputs: torch.Tensor, labels: torch.Tensor, *,
                 config: SupernetConfig, on_step: Callable[[int, float], None] | None, target: torch.device) -> float:
    num_classes = supernet.num_classes
    rng = random.Random(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    largest = supernet.largest_subnet()
    supernet.train()
    batches = ((x.to(target), y.to(target)) for x, y in _batches(inputs, labels, config=config, generator=generator))
    recent: list[float] = []
    if config.largest_steps:
        optimizer = _sgd(supernet, config)
        for step in range(config.largest_steps):
            _set_cosine_lr(optimizer, config.largest_lr, step, config.largest_steps)
            x, y = next(batches)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(supernet(_at(x, largest), subnet=largest), y)
            loss.backward()
            optimizer.step()
            recent = (recent + [float(loss.detach())])[-10:]
            if on_step is not None:
                on_step(step, recent[-1])
    if config.sort_channels:
        sort_channels_by_importance(supernet)  # narrow sub-networks then inherit the most used channels
    done = config.largest_steps
    for elastic, steps in config.phases():
        optimizer = _sgd(supernet, config)  # fresh momentum: each sandwich phase is a new schedule
        smallest = smallest_candidate(space, num_classes=num_classes, elastic=elastic).netspec()
        for step in range(steps):
            _set_cosine_lr(optimizer, config.lr, step, steps)
            x, y = next(batches)
            optimizer.zero_grad(set_to_none=True)
            if config.sampling == "uniform":
                loss = _uniform_step(supernet, space, x, y, rng=rng, count=config.random_subnets, elastic=elastic)
            else:
                others = [smallest] + [random_candidate(space, rng, num_classes=num_classes, elastic=elastic).netspec()
                                       for _ in range(config.random_subnets)]
                loss = _sandwich_step(supernet, x, y, largest=largest, others=others, config=config)
            optimizer.step()
            recent = (recent + [loss])[-10:]
            if on_step is not None:
                on_step(done, recent[-1])
            done += 1
    return sum(recent) / len(recent)


def _sandwich_step(supernet: Supernet, x: torch.Tensor, y: torch.Tensor, *, largest: NetSpec, others: list[NetSpec],
                   config: SupernetConfig) -> float:
    """Gradients of the largest sub-network on the labels and of ``others`` on its soft targets; the largest's loss."""
    # Losses are averaged over the sandwich: summed, every shared weight would see a step
    # len(others) + 1 times larger than single-network training at the same lr (it diverged).
    share = 1.0 / (len(others) + 1)
    logits = supernet(_at(x, largest), subnet=largest)
    loss = F.cross_entropy(logits, y)
    (loss * share).backward()
    teacher = logits.detach()
    for subnet in others:
        student = supernet(_at(x, subnet), subnet=subnet)
        kd = distillation_loss(student, teacher, y, temperature=config.temperature, alpha=config.alpha)
        (kd * share).backward()
    return float(loss.detach())


def _uniform_step(supernet: Supernet, space: SearchSpace, x: torch.Tensor, y: torch.Tensor, *, rng: random.Random,
                  count: int, elastic: frozenset[str]) -> float:
    """Gradients of ``count`` uniformly drawn sub-networks on the labels (averaged); their mean loss."""
    total = 0.0
    for _ in range(count):
        subnet = random_candidate(space, rng, num_classes=supernet.num_classes, elastic=elastic).netspec()
        loss = F.cross_entropy(supernet(_at(x, subnet), subnet=subnet), y)
        (loss / count).backward()
        total += float(loss.detach()) / count
    return total


def _at(x: torch.Tensor, subnet: NetSpec) -> torch.Tensor:
    """The batch at ``subnet``'s resolution (its candidate's ``input_size``; see the module doc)."""
    return resize_images(x, subnet.input_size)


def _sgd(supernet: Supernet, config: SupernetConfig) -> torch.optim.SGD:
    return torch.optim.SGD(supernet.parameters(), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, nesterov=True)


def _set_cosine_lr(optimizer: torch.optim.SGD, peak: float, step: int, steps: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = 0.5 * peak * (1 + math.cos(math.pi * step / steps))


def _batches(inputs: torch.Tensor, labels: torch.Tensor, *, config: SupernetConfig,
             generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless seeded batches, reshuffled each epoch, augmented when the config says so."""
    n = inputs.shape[0]
    while True:
        order = torch.randperm(n, generator=generator)
        for cursor in range(0, n - config.batch_size + 1, config.batch_size):
            index = order[cursor : cursor + config.batch_size]
            x = inputs[index]
            if config.augment:
                x = crop_and_flip(x, generator=generator).contiguous(memory_format=torch.channels_last)
            yield x, labels[index]
