"""The largest network of a space, briefly trained: teacher for distillation and weight source.

Cached under runs/cache/ keyed by space, dataset, recipe (seed and steps included) and torch's thread
count (CPU training repeats bit for bit only at one thread count), written atomically.
"""
from __future__ import annotations

import hashlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from autoc.arch.builder import AutocNet, build_model
from autoc.arch.config import ArchConfig
from autoc.arch.netspec import build_netspec
from autoc.data.datasets import DatasetSplit
from autoc.files import save_torch_atomic
from autoc.training.loop import TrainConfig, accuracy, train

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Teacher:
    """The trained largest network candidates learn from, its validation accuracy and its cache file."""

    model: AutocNet
    val_accuracy: float
    path: Path


def teacher_cache_path(cache_dir: Path, *, space_fingerprint: str, data: DatasetSplit, config: TrainConfig,
                       threads: int | None = None) -> Path:
    """``threads``: torch's threads for the training (None: the current setting)."""
    key = f"{space_fingerprint}|{data.fingerprint}|{config}|threads={threads or torch.get_num_threads()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"teacher-{digest}.pt"


def load_or_train_teacher(
    arch: ArchConfig,
    data: DatasetSplit,
    *,
    cache_path: Path,
    config: TrainConfig,
    progress: bool,
    device: torch.device | None = None,
) -> Teacher:
    """The teacher of ``arch`` from ``cache_path``, or trained with ``config`` and cached there when the
    file is missing or unreadable."""
    model = build_model(build_netspec(arch), seed=config.seed)
    if cache_path.is_file():
        try:
            model.load_state_dict(torch.load(cache_path, map_location="cpu", weights_only=True))
            return Teacher(model, accuracy(model, data.val_x, data.val_y), cache_path)
        except Exception:  # a truncated or stale cache is rebuilt, never trusted
            logger.warning("teacher cache %s is unreadable; retraining it", cache_path)
    bar = tqdm(total=config.steps, desc="teacher", unit="step", file=sys.stderr, disable=not progress, dynamic_ncols=True)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix_str(f"loss={loss:.3f}")

    train(model, data.train_x, data.train_y, config=config, on_step=on_step, device=device)
    bar.close()
    save_torch_atomic(cache_path, model.state_dict())
    return Teacher(model, accuracy(model, data.val_x, data.val_y), cache_path)
