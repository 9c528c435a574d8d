"""Everything a trial needs besides its parameters, built once per process from cached artifacts.

The driver calls :func:`build_objective_context` first, which creates the caches (teacher weights
under runs/cache/, the device profile under runs/devices/); every worker then calls it again and
only loads them. This is the one place that decides what a trial inherits its weights from.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from autoc.training.compute import training_device
from autoc.data.datasets import DatasetSplit, load_dataset
from autoc.evaluate.teacher import load_or_train_teacher, teacher_cache_path
from autoc.training.loop import TrainConfig, accuracy, predict_logits
from autoc.latency.device import open_latency_model
from autoc.search.objective import ObjectiveContext
from autoc.search.options import SearchOptions, worker_threads
from autoc.space import SearchSpace, load_space
from autoc.supernet import SupernetConfig, load_or_train_supernet


@dataclass(frozen=True)
class SearchInputs:
    """The cheap inputs the study identity is made of."""

    space: SearchSpace
    data: DatasetSplit


def load_inputs(options: SearchOptions) -> SearchInputs:
    """The space and dataset ``options`` name, loaded."""
    space = load_space(options.space)
    data = load_dataset(
        options.dataset,
        data_dir=options.data_dir,
        input_size=space.input_size,
        seed=options.seed,
        max_train=options.max_train,
        max_val=options.max_val,
        offer_download=False,  # a search reads its data where it is
    )
    return SearchInputs(space=space, data=data)


def supernet_config(options: SearchOptions, *, seed: int | None = None) -> SupernetConfig | None:
    """The supernet recipe a search asks for (``seed``: None is the search's; None without a
    supernet); the same recipe given to `autoc supernet train` gives the same cache."""
    if options.supernet is None or seed is None:
        return options.supernet
    return replace(options.supernet, seed=seed)


def build_objective_context(
    options: SearchOptions, *, inputs: SearchInputs | None = None, progress: bool = False, threads: int | None = None,
    training_seed: int | None = None,
) -> ObjectiveContext:
    """``threads``: torch's threads for everything trained here and in the trials (None: the
    worker's share, ``worker_threads``); the teacher and supernet caches are keyed by it.
    ``training_seed``: seed of the teacher or supernet and of the fine-tuning (None: ``options.seed``,
    which also draws the data split); another one on the same data is another sample of the estimate."""
    inputs = inputs or load_inputs(options)
    space, data = inputs.space, inputs.data
    seed = options.seed if training_seed is None else training_seed
    threads = threads or worker_threads(options)
    torch.set_num_threads(threads)
    device = training_device(options.train_device)  # resolved per process: each Ray worker has its own GPUs
    runs_dir = options.storage.runs_dir
    latency = open_latency_model(options.device, runs_dir=runs_dir, space=space, progress=progress)
    teacher_config = TrainConfig(
        steps=options.teacher_steps, batch_size=options.batch_size, lr=0.05, alpha=0.0, seed=seed
    )
    cache = teacher_cache_path(
        runs_dir / "cache", space_fingerprint=space.fingerprint(), data=data, config=teacher_config,
        threads=threads,
    )
    supernet = None
    if options.supernet is not None:
        supernet = load_or_train_supernet(
            space, data, cache_dir=runs_dir / "cache",
            config=supernet_config(options, seed=seed),
            progress=progress,
            device=device,
        )
        teacher_model = supernet.largest(calibration=data.train_x)  # in-place KD teacher of the supernet
        teacher_accuracy = accuracy(teacher_model, data.val_x, data.val_y)
    else:
        teacher = load_or_train_teacher(
            space.largest_arch(num_classes=data.num_classes), data, cache_path=cache, config=teacher_config,
            progress=progress, device=device,
        )
        teacher_model, teacher_accuracy = teacher.model, teacher.val_accuracy
    return ObjectiveContext(
        space=space,
        data=data,
        latency=latency,
        teacher=teacher_model,
        teacher_logits=predict_logits(teacher_model, data.train_x),
        teacher_accuracy=teacher_accuracy,
        supernet=supernet,
        finetune=TrainConfig(steps=options.finetune_steps, batch_size=options.batch_size, lr=0.01, seed=seed),
        budget_ms=options.budget_ms,
        budget_mj=options.budget_mj,
        weights_dir=options.run_directory() / "weights",  # the driver always names the study
        train_device=device,
    )
