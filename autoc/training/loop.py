"""Short training loops on in-memory tensors: teacher training, KD fine-tuning, accuracy."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from autoc.compress.distill import distillation_loss
from autoc.training.compute import model_device, trained_on


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe: steps, optimiser, distillation and augmentation."""

    steps: int
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    temperature: float = 4.0
    alpha: float = 0.7  # weight of the distillation term
    seed: int = 0
    # Random crop (zero padding 4) and horizontal flip per image, the standard CIFAR recipe:
    # without it a multi-epoch run on a small slice rewards memorising, not architecture.
    # Off by default: flips are wrong for digits and short fine-tunes gain nothing from it.
    augment: bool = False


def train(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    config: TrainConfig,
    teacher_logits: torch.Tensor | None = None,
    on_step: Callable[[int, float], None] | None = None,
    stop_after: int | None = None,
    device: torch.device | None = None,
) -> float:
    """SGD with a cosine schedule for ``config.steps`` steps; returns the mean loss of the last 10 steps.

    ``teacher_logits`` are precomputed for ``inputs`` (row-aligned): distillation then costs
    no teacher forward pass per step. Several teachers stack on dim 0 ([T, N, C]); their
    soft targets are averaged. ``stop_after`` runs only the first that many steps of the
    ``config.steps`` schedule: the model as the full run has it at that step. ``device``: where
    the steps run (``autoc.training.compute``); the model comes back to its own device after.
    """
    with trained_on(model, device) as target:
        return _train_steps(model, inputs, labels, config=config, teacher_logits=teacher_logits, on_step=on_step,
                            stop_after=stop_after, target=target)


def _train_steps(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, config: TrainConfig,
                 teacher_logits: torch.Tensor | None, on_step: Callable[[int, float], None] | None,
                 stop_after: int | None, target: torch.device) -> float:
    # Batches are drawn and augmented on the CPU (one seeded generator, the same on any device) and then moved.
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
    )
    n = inputs.shape[0]
    model.train()
    recent: list[float] = []
    order = torch.randperm(n, generator=generator)
    cursor = 0
    for step in range(config.steps if stop_after is None else min(stop_after, config.steps)):
        if cursor + config.batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        index = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        lr = 0.5 * config.lr * (1 + math.cos(math.pi * step / max(1, config.steps)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = inputs[index]
        if config.augment:
            batch = crop_and_flip(batch, generator=generator)
        # channels-last: CPU depthwise-conv backward runs several times faster in it, same math
        logits = model(batch.to(target).contiguous(memory_format=torch.channels_last))
        teacher = None
        if teacher_logits is not None:  # [N, C], or [T, N, C] for several teachers
            teacher = (teacher_logits[:, index] if teacher_logits.dim() == 3 else teacher_logits[index]).to(target)
        loss = distillation_loss(
            logits, teacher, labels[index].to(target), temperature=config.temperature, alpha=config.alpha
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        recent = (recent + [loss_value])[-10:]
        if on_step is not None:
            on_step(step, loss_value)
    return sum(recent) / max(1, len(recent))


def crop_and_flip(images: torch.Tensor, *, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Each image of an [N, C, H, W] batch shifted by up to ``padding`` pixels (zeros fill in) and
    mirrored left-right with probability 1/2."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator).tolist()
    flips = torch.rand(n, generator=generator).lt(0.5).tolist()
    out = torch.empty_like(images, memory_format=torch.contiguous_format)
    for i, ((dy, dx), flip) in enumerate(zip(offsets, flips)):
        crop = padded[i, :, dy : dy + h, dx : dx + w]
        out[i] = crop.flip(-1) if flip else crop
    return out


@torch.inference_mode()
def predict_logits(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """``model``'s logits for ``inputs`` in eval mode, in batches, as CPU tensors."""
    model.eval()
    device = model_device(model)  # logits come back as CPU tensors
    return torch.cat([model(inputs[i : i + batch_size].to(device)).cpu() for i in range(0, inputs.shape[0], batch_size)])


def correct_predictions(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *,
                        batch_size: int = 64) -> torch.Tensor:
    """Per input: does ``model``'s top class match the label (bool, on the CPU)."""
    return predict_logits(model, inputs, batch_size=batch_size).argmax(1) == labels


def accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 64) -> float:
    """The share of ``inputs`` that ``model`` classifies as ``labels``."""
    return float(correct_predictions(model, inputs, labels, batch_size=batch_size).float().mean())


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs: torch.Tensor, *, batches: int = 8, batch_size: int = 64) -> None:
    """Re-estimate BatchNorm statistics of a sub-network: inherited running stats belong to
    the larger network and are wrong for the slice (Once-for-All does the same)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    # A seeded shuffle: loaders may order images by class, and a class-pure prefix skews the statistics.
    order = torch.randperm(inputs.shape[0], generator=torch.Generator().manual_seed(0))
    device = model_device(model)
    for i in range(min(batches, max(1, inputs.shape[0] // batch_size))):
        model(inputs[order[i * batch_size : (i + 1) * batch_size]].to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum


def teacher_logits_of(teachers: list[nn.Module] | tuple[nn.Module, ...], inputs: torch.Tensor) -> torch.Tensor:
    """Logits of one teacher ([N, C]) or several stacked ([T, N, C], multi-teacher distillation)."""
    logits = [predict_logits(t, inputs) for t in teachers]
    return logits[0] if len(logits) == 1 else torch.stack(logits)
