"""One trained supernet per (space, dataset, config incl. seed, thread count), cached under ``runs/cache``.

The file is written to a temporary name and moved into place, so an interrupted run leaves
no half-written cache; an unreadable cache is retrained, never trusted.
"""
from __future__ import annotations

import hashlib
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from autoc.arch.builder import seeded
from autoc.files import save_torch_atomic
from autoc.data.datasets import DatasetSplit
from autoc.space import SearchSpace
from autoc.supernet.elastic import Supernet
from autoc.supernet.subnets import skip_conv_slots
from autoc.supernet.train import SupernetConfig, train_supernet

logger = logging.getLogger(__name__)

FORMAT = "autoc.supernet/1"


@dataclass(frozen=True)
class SupernetRun:
    """A loaded or freshly trained supernet and where it lives."""

    supernet: Supernet
    path: Path
    trained_now: bool
    train_seconds: float  # 0 when loaded from the cache


def supernet_for_space(space: SearchSpace, *, num_classes: int, seed: int = 0) -> Supernet:
    """An untrained supernet holding every sub-network of ``space`` for ``num_classes`` classes,
    initialised from ``seed`` alone."""
    with seeded(seed):
        return Supernet(space.largest_arch(num_classes=num_classes),
                        extra_slots=skip_conv_slots(space, num_classes=num_classes))


def supernet_cache_path(cache_dir: Path, *, space: SearchSpace, data: DatasetSplit, config: SupernetConfig,
                        threads: int | None = None) -> Path:
    """``threads``: torch's threads for the training (None: the current setting); CPU training
    repeats bit for bit only at one thread count, so another count is another cache."""
    # Keyed by the training items only: the held-out split's size does not change the weights. The
    # space's fingerprint covers its resolution list: a supernet trained with elastic resolution over
    # one list is never reused for another (its sub-networks trained at those resolutions only).
    key = (f"{FORMAT}|{space.fingerprint()}|{data.train_fingerprint or data.fingerprint}|{config}"
           f"|threads={threads or torch.get_num_threads()}")
    return Path(cache_dir) / f"supernet-{space.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def load_or_train_supernet(
    space: SearchSpace,
    data: DatasetSplit,
    *,
    cache_dir: Path,
    config: SupernetConfig = SupernetConfig(),
    progress: bool = True,
    device: torch.device | None = None,
) -> Supernet:
    """The supernet of (space, data, config): from the cache, or trained now (on ``device``) and cached."""
    return open_supernet(space, data, cache_dir=cache_dir, config=config, progress=progress, device=device).supernet


def open_supernet(
    space: SearchSpace,
    data: DatasetSplit,
    *,
    cache_dir: Path,
    config: SupernetConfig = SupernetConfig(),
    progress: bool = True,
    retrain: bool = False,
    device: torch.device | None = None,
) -> SupernetRun:
    """The cached supernet of (space, data, config), trained now (on ``device``: None is the CPU) when missing."""
    path = supernet_cache_path(cache_dir, space=space, data=data, config=config)
    supernet = supernet_for_space(space, num_classes=data.num_classes, seed=config.seed)
    if path.is_file() and not retrain:
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("format") != FORMAT:
                raise ValueError(f"format {saved.get('format')!r}")
            supernet.load_state_dict(saved["state_dict"])
            supernet.eval()
            return SupernetRun(supernet, path, trained_now=False, train_seconds=0.0)
        except Exception as exc:  # a truncated or stale cache is rebuilt, never trusted
            logger.warning("supernet cache %s is unreadable (%s); retraining it", path, exc)
            supernet = supernet_for_space(space, num_classes=data.num_classes, seed=config.seed)
    bar = tqdm(total=config.total_steps, desc="supernet", unit="step", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        if step % 5 == 0:
            bar.set_postfix_str(f"loss={loss:.3f}")

    start = time.perf_counter()
    try:
        train_supernet(supernet, space, data.train_x, data.train_y, config=config, on_step=on_step, device=device)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    supernet.eval()
    save_torch_atomic(path, {"format": FORMAT, "state_dict": supernet.state_dict()}, fix="pass a writable cache_dir",
                      fields=("cache_dir",))
    return SupernetRun(supernet, path, trained_now=True, train_seconds=seconds)
