"""Where training steps run: this machine's CPU, or a CUDA GPU when the user asks for one.

Only the SGD steps move (teacher, supernet, fine-tuning, reference and finalist training):
a model goes to the training device for its steps and comes back where it was, so estimates,
latency measurement and export keep working on CPU tensors as before. The choice is not part
of any recipe or cache key: the same recipe on another device is another sample of the same
training, as on another machine.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from autoc.errors import ComputeError

TRAIN_DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"


def training_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` / ``cuda:N`` (a GPU torch can see), or ``auto`` (the first GPU if any, else the CPU)."""
    text = name.strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ComputeError(f"unknown training device {name!r}; use {TRAIN_DEVICE_CHOICES}, e.g. train_device auto",
                           fields=("train_device",))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ComputeError(f"training device {name!r}: torch sees no CUDA GPU on this machine "
                               f"(torch.cuda.is_available() is False); use train_device cpu, or auto to take a "
                               f"GPU only where there is one", fields=("train_device",))
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ComputeError(f"training device {name!r}: this machine has {count} CUDA GPU(s), cuda:0 to "
                               f"cuda:{count - 1}; use one of those or train_device auto", fields=("train_device",))
    return device


def model_device(model: nn.Module) -> torch.device:
    """The device ``model``'s parameters are on (its first parameter's: autoc's models keep all on one)."""
    return next(model.parameters()).device


@contextlib.contextmanager
def trained_on(model: nn.Module, device: torch.device | None) -> Iterator[torch.device]:
    """Move ``model`` to ``device`` (None: leave it where it is) for the block, and back after it.

    Parameters keep their identity across ``Module.to`` (their data is swapped), so an
    optimiser made inside the block updates the model the caller holds."""
    home = model_device(model)
    target = home if device is None else device
    model.to(target)
    try:
        yield target
    finally:
        model.to(home)
