"""What `autoc search` was asked to do: one frozen value, passed to the driver and to every worker."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SearchOptions:
    budget_ms: float
    budget_mj: float | None = None  # optional energy budget per inference (estimated from the profile)
    space: str = "mbv2-cifar"
    dataset: str = "digits"
    data_dir: str | None = None
    device: str = "host"
    storage: str | None = None
    study: str | None = None
    trials: int = 30
    timeout_s: float | None = None
    seed: int = 0
    sampler: str = "tpe"  # beat NSGA-II at small trial counts (README, hypervolume figures)
    # TPE / NSGA-II start from candidates spread over the predicted-latency range (autoc.search.startup);
    # off by default: with the supernet estimate it found less accurate networks (README, search quality)
    spread_start: bool = False
    runs_dir: Path = Path("runs")
    finetune_steps: int = 20
    teacher_steps: int = 120
    supernet_steps: int = 0  # > 0: candidates inherit from a weight-sharing supernet trained this many steps
    # The rest of the supernet's recipe, as `autoc supernet train` takes it, so a search finds that cache.
    supernet_largest_steps: int = 0
    supernet_lr: float = 0.05
    supernet_random_subnets: int = 2
    supernet_augment: bool = False
    supernet_sort_channels: bool = False
    supernet_progressive: bool = False
    supernet_final_phase_share: float | None = None
    supernet_sampling: str = "sandwich"
    # Finalist stage (autoc.search.finalists): train the top `finalists` estimates from scratch
    # for `finalist_steps` steps and choose by that accuracy; 0 chooses by the estimate; "auto"
    # trains the top estimate and the trials its validation images do not separate from it.
    finalists: int | str = 0
    finalist_steps: int = 300
    finalist_augment: bool = False
    # Seed noise (autoc.search.seed_noise): the top `noise_trials` estimates are estimated again with
    # the next training seed, so the estimate-noise line and `finalists="auto"` count that noise too.
    noise_trials: int = 4
    batch_size: int = 32
    # Where the training steps run (teacher, supernet, fine-tuning, finalists): cpu, cuda, cuda:N or
    # auto (autoc.training.compute); estimates, latency and export stay on the CPU.
    train_device: str = "cpu"
    max_train: int | None = None
    max_val: int | None = None
    progress: bool = True
    workers: int = 1  # trials at once; 1 runs in this process, more run as Ray tasks
    ray_address: str | None = None  # an existing Ray cluster; None starts a local instance when workers > 1
    cpus_per_worker: int | None = None  # None: this machine's cores shared out (local), 1 on a cluster
    gpus_per_worker: float | None = None  # GPUs Ray reserves per worker; None: 1 when training on a GPU, else 0
    heartbeat_interval_s: int = 10
    grace_period_s: int = 60
    # The study's run directory when it is not runs_dir/study: a renamed one, resumed (--resume DIR).
    run_dir: Path | None = None

    def run_directory(self) -> Path:
        return Path(self.run_dir) if self.run_dir is not None else Path(self.runs_dir) / str(self.study)


# SearchOptions fields of the stages after the trials: seed-noise reruns and finalists (stored for --resume).
FINALIST_FIELDS = ("finalists", "finalist_steps", "finalist_augment", "noise_trials")

# SearchOptions fields that make up the supernet's recipe beside supernet_steps (stored for --resume).
SUPERNET_RECIPE_FIELDS = ("supernet_largest_steps", "supernet_lr", "supernet_random_subnets", "supernet_augment",
                          "supernet_sort_channels", "supernet_progressive",
                          "supernet_final_phase_share", "supernet_sampling")


def worker_threads(options: SearchOptions, *, cpus: int | None = None) -> int:
    """Torch threads of one worker (its CPU share, at least one), and of the teacher and supernet
    training before the trials: CPU training repeats bit for bit only at one thread count."""
    if options.cpus_per_worker is not None:
        return options.cpus_per_worker
    return max(1, (cpus or os.cpu_count() or 1) // options.workers)
