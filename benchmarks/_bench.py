"""Shared pieces of the accuracy benchmarks: data, supernet, candidate spreads, rank statistics."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import tempfile
import time
from pathlib import Path

import torch

from autoc.arch.builder import build_model
from autoc.candidate import Candidate
from autoc.training.compute import training_device
from autoc.data.datasets import DatasetSplit, load_dataset
from autoc.evaluate.estimate import EstimateConfig
from autoc.evaluate.metrics import spec_macs
from autoc.evaluate.recipe import reference_accuracy, scratch_recipe
from autoc.training.loop import TrainConfig
from autoc.space import SearchSpace
from autoc.supernet import SupernetConfig, open_supernet, random_candidate


# Reference trainings cost minutes each on a CPU; the results behind the README's figures are kept here.
COMMITTED_REFERENCES = Path(__file__).resolve().parent / "reference-cache"


def add_common_args(parser) -> None:
    parser.add_argument("--dataset", default="cifar10", help="cifar10 (needs --data) or digits (bundled)")
    parser.add_argument("--data", default=None, help="CIFAR-10 JPEG zip, extracted folder or cifar-10-batches-py")
    parser.add_argument("--space", default="mbv2-cifar")
    parser.add_argument("--max-train", type=int, default=2000)
    parser.add_argument("--max-val", type=int, default=500)
    parser.add_argument("--supernet-steps", type=int, default=60)
    parser.add_argument("--random-subnets", type=int, default=1)
    parser.add_argument("--supernet-largest-steps", type=int, default=0,
                        help="train the largest network alone this many steps before the sandwich steps")
    parser.add_argument("--supernet-lr", type=float, default=0.05, help="peak lr of the sandwich steps")
    parser.add_argument("--supernet-augment", action="store_true", help="random crop and flip in supernet training")
    parser.add_argument("--supernet-sort-channels", action="store_true",
                        help="reorder channels by importance after the largest-only steps")
    parser.add_argument("--supernet-progressive", action="store_true",
                        help="progressive shrinking: kernel, then depth, expansion, width elastic")
    parser.add_argument("--supernet-final-phase-share", type=float, default=None,
                        help="with --supernet-progressive: the all-elastic phase's share of the steps")
    parser.add_argument("--supernet-sampling", default="sandwich", choices=("sandwich", "uniform"),
                        help="uniform: each step trains random sub-networks only, on the labels (SPOS)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supernet-seed", type=int, default=None,
                        help="the supernet's training seed (default --seed, which also draws the data slices)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--train-device", default="cpu",
                        help="where reference and supernet training steps run: cpu, cuda, cuda:N or auto")


def add_max_eval_arg(parser) -> None:
    parser.add_argument("--max-eval", type=int, default=EstimateConfig().max_eval,
                        help="held-out images each estimate is scored on (0: all of them; figures measured before "
                             "session 16 used the then-default 256)")


def estimate_config(args, **options) -> EstimateConfig:
    """The estimate of ``--max-eval`` images (0: all) and ``--seed``; ``options`` set the rest."""
    return EstimateConfig(seed=args.seed, max_eval=args.max_eval or None, **options)


def at_least_one(text: str) -> int:
    """argparse type of a count of recipe seeds: 0 would leave a comparison without seed 0's accuracies."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (recipe seeds per network), got {value}")
    return value


def seed_accuracies(candidate: Candidate, data: DatasetSplit, *, recipe: TrainConfig, cache: Path, seeds: int,
                    device=None, train_missing: bool = True) -> list[float | None]:
    """Held-out accuracies of ``candidate`` trained by ``recipe`` at seeds recipe.seed .. + seeds-1 (cached ones read;
    with ``train_missing=False`` a seed not in the cache is None)."""
    results = [reference_accuracy(candidate, data, config=dataclasses.replace(recipe, seed=recipe.seed + s),
                                  cache_dir=cache, train_missing=train_missing, device=device) for s in range(seeds)]
    return [None if r is None else r.accuracy for r in results]


def train_device(args) -> torch.device:
    return training_device(args.train_device)


def add_latency_dump_args(parser) -> None:
    """The sampled networks and timing rounds of the latency dump benchmarks (same defaults as calibration's
    benchmark, benchmarks/latency_accuracy.py: 40 fitting + 100 held-out mbv2-cifar networks of seed 2026)."""
    parser.add_argument("--space", default="mbv2-cifar")
    parser.add_argument("--fit", type=int, default=40)
    parser.add_argument("--held-out", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)


def add_recipe_args(parser, *, default_steps: int) -> None:
    """The reference recipe every compared model is trained by (see autoc.evaluate.recipe)."""
    parser.add_argument("--proper-steps", type=int, default=default_steps, help="SGD steps of batch 32, lr 0.05 cosine")
    parser.add_argument("--proper-augment", action=argparse.BooleanOptionalAction, default=False,
                        help="random crop and flip in the reference recipe (CIFAR-10; not for digits)")
    parser.add_argument("--reference-cache", type=Path, default=COMMITTED_REFERENCES,
                        help="where reference results are kept (default: the ones measured for the README, "
                             "kept in the repository so the figures can be re-checked without retraining)")


def reference_recipe(args) -> TrainConfig:
    return scratch_recipe(steps=args.proper_steps, seed=args.seed, augment=args.proper_augment)


def reference_cache(args) -> Path:
    return args.reference_cache


def load_data(args, space: SearchSpace) -> DatasetSplit:
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, data_dir=args.data, input_size=space.input_size, seed=args.seed,
                        max_train=args.max_train, max_val=args.max_val, max_selection=getattr(args, "selection", None))
    # Channels-last inputs keep every conv in that layout, where CPU depthwise backward is ~4x faster.
    names = ("train_x", "val_x") + (("selection_x",) if data.selection_x is not None else ())
    return dataclasses.replace(data, **{name: getattr(data, name).contiguous(memory_format=torch.channels_last)
                                        for name in names})


def trained_supernet(args, space: SearchSpace, data: DatasetSplit):
    config = SupernetConfig(steps=args.supernet_steps, random_subnets=args.random_subnets,
                            seed=args.seed if args.supernet_seed is None else args.supernet_seed,
                            lr=args.supernet_lr, largest_steps=args.supernet_largest_steps,
                            augment=args.supernet_augment, sort_channels=args.supernet_sort_channels,
                            progressive=args.supernet_progressive,
                            final_phase_share=args.supernet_final_phase_share, sampling=args.supernet_sampling)
    run = open_supernet(space, data, cache_dir=args.runs_dir / "cache", config=config, progress=True,
                        device=train_device(args))
    return run, config


def spread_by_macs(space: SearchSpace, count: int, *, num_classes: int, seed: int, pool: int = 400) -> list[Candidate]:
    """``count`` random candidates at evenly spaced quantiles of the MAC range of a random pool."""
    rng = random.Random(seed)
    sampled = sorted((random_candidate(space, rng, num_classes=num_classes) for _ in range(pool)),
                     key=lambda c: spec_macs(c.netspec()))
    picks = [round(i * (len(sampled) - 1) / (count - 1)) for i in range(count)]
    return [sampled[i] for i in picks]


def candidate_key(candidate: Candidate) -> str:
    """One string per candidate, to match candidates across benchmark outputs and the reference cache."""
    return json.dumps(candidate.to_dict(), sort_keys=True)


def parameter_count(candidate: Candidate) -> int:
    """Parameters of the candidate's pruned network (the size proxy the accuracy benchmarks compare with)."""
    return sum(p.numel() for p in build_model(candidate.netspec()).parameters())


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` of a ``--shard`` option: this process takes every N-th item from the K-th."""
    shard, shards = (int(part) for part in text.split("/"))
    return shard, shards


def interleaved(count: int) -> list[int]:
    """0..count-1 in an order whose every prefix spans the range (ends first, then midpoints),
    so a run cut short still covers the whole range."""
    order, seen = [], set()
    step = count - 1
    while step >= 1 and len(order) < count:
        for i in range(0, count, step):
            if i not in seen:
                seen.add(i)
                order.append(i)
        step //= 2
    return order + [i for i in range(count) if i not in seen]


def kendall_tau(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def machine_identity() -> dict:
    """What a benchmark result records of the machine it was measured on."""
    import platform

    from autoc.latency.profile import cpu_model

    return {"node": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".bench-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.replace(tmp, path)


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
