"""`autoc supernet train`: train (or load from the cache) the weight-sharing supernet of a space."""
from __future__ import annotations

import argparse
from pathlib import Path

from autoc.commands._flags import option_flags
from autoc.commands._numbers import amount, count
from autoc.search.options import field_default as search_default
from autoc.supernet import SupernetConfig

_RECIPE = SupernetConfig()  # the recipe's defaults, as --help shows them


def register(sub: argparse._SubParsersAction) -> None:
    """Add `autoc supernet train` and its options."""
    p = sub.add_parser("supernet", help="weight-sharing supernet of a search space")
    actions = p.add_subparsers(dest="supernet_action", required=True)
    t = actions.add_parser("train", help="train the supernet of (space, dataset, seed) once; cached under runs/cache")
    t.add_argument("--space", default=search_default("space"), help="search space name (search_spaces/NAME.yaml) or "
                   f"YAML path (default {search_default('space')}, as autoc search's, so that a search finds it)")
    t.add_argument("--dataset", default="digits", help="digits (bundled), cifar10 or imagefolder")
    t.add_argument("--data-dir", default=None, help="dataset location for cifar10 / imagefolder")
    t.add_argument("--download", action="store_true", help="cifar10: fetch it into --data-dir if absent")
    t.add_argument("--steps", type=int, default=None, help=f"sandwich-rule training steps (default {_RECIPE.steps})")
    t.add_argument("--batch-size", type=int, default=None, help=f"images per step (default {_RECIPE.batch_size})")
    t.add_argument("--random-subnets", type=int, default=None, help="random sub-networks per step beside the largest and smallest; with --sampling uniform, "
                   f"all of the step's sub-networks (default {_RECIPE.random_subnets})")
    t.add_argument("--largest-steps", type=int, default=None,
                   help=f"first train the largest network alone for this many steps (default {_RECIPE.largest_steps})")
    t.add_argument("--lr", type=amount(str(_RECIPE.lr)), default=None,
                   help=f"peak learning rate of the sandwich steps (default {_RECIPE.lr})")
    t.add_argument("--augment", action="store_true", help="random crop and horizontal flip (photos, not digits)")
    t.add_argument("--sort-channels", action="store_true",
                   help="after --largest-steps, reorder channels by importance so narrow sub-networks inherit "
                        "the most used ones (Once-for-All)")
    t.add_argument("--progressive", action="store_true",
                   help="progressive shrinking (Once-for-All): the sandwich steps in four equal phases making "
                        "kernel, then depth, expansion and width elastic")
    t.add_argument("--final-phase-share", type=float, default=None,
                   help="with --progressive: the all-elastic phase's share of the steps (default: equal phases)")
    t.add_argument("--sampling", default=None, help="sandwich (largest, smallest and random sub-networks a step, "
                   f"distilled from the largest) or uniform (random sub-networks only, on the labels: SPOS) [{_RECIPE.sampling}]")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=count(1, 2), default=None,
                   help="torch threads for the training; part of the cache key, as CPU training repeats bit for bit "
                        "only at one thread count: give the search's (its --cpus-per-worker; default, like a "
                        "one-worker search: this machine's cores)")
    t.add_argument("--max-train", type=int, default=None, help="use at most this many training images")
    t.add_argument("--max-val", type=int, default=None, help="use at most this many validation images")
    t.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where caches live (runs/cache)")
    t.add_argument("--retrain", action="store_true", help="train again even if a cached supernet exists")
    t.add_argument("--train-device", default="cpu", help="where the training steps run: cpu, cuda, cuda:N, or auto "
                   "(a GPU when torch sees one); the cache is the same whichever trained it [cpu]")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    # the cache is RUNS_DIR/cache: an error naming open_supernet's cache_dir shows --runs-dir
    t.set_defaults(handler=run_train, option_flags={**option_flags(t), "cache_dir": "--runs-dir"})


def run_train(args: argparse.Namespace) -> int:
    """Train (or load from the cache) a space's supernet and print its largest and smallest sub-networks'
    accuracy."""
    import os
    from dataclasses import replace

    import torch

    from autoc.training.compute import training_device
    from autoc.data.datasets import load_dataset, resize_images
    from autoc.evaluate.estimate import eval_subset
    from autoc.training.loop import accuracy
    from autoc.space import load_space
    from autoc.supernet import open_supernet, smallest_candidate

    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size),
                                   ("random_subnets", args.random_subnets), ("largest_steps", args.largest_steps),
                                   ("lr", args.lr), ("augment", args.augment or None),
                                   ("sort_channels", args.sort_channels or None),
                                   ("progressive", args.progressive or None),
                                   ("final_phase_share", args.final_phase_share),
                                   ("sampling", args.sampling)) if v is not None}
    config = replace(SupernetConfig(seed=args.seed), **overrides)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    device = training_device(args.train_device)  # before loading data: a missing GPU fails at once
    space = load_space(args.space)
    data = load_dataset(args.dataset, data_dir=args.data_dir, input_size=space.input_size, seed=args.seed,
                        max_train=args.max_train, max_val=args.max_val, download=args.download)
    run = open_supernet(space, data, cache_dir=args.runs_dir / "cache", config=config,
                        progress=not args.no_progress, retrain=args.retrain, device=device)
    how = f"trained in {run.train_seconds:.0f} s on {device}" if run.trained_now else "loaded from the cache"
    print(f"supernet of {space.name} on {data.name} ({len(data.train_y)} train images, {config.largest_steps} largest-only + {config.steps} {config.sampling} steps): "
          f"{how} -> {run.path}")
    keep = eval_subset(data.val_y, 500, seed=args.seed)
    val_x, val_y = data.val_x[keep], data.val_y[keep]
    for label, subnet in (("largest", run.supernet.largest_subnet()),
                          ("smallest", smallest_candidate(space, num_classes=data.num_classes).netspec())):
        # extract resizes the calibration images to the sub-network's resolution; the held-out ones too
        model = run.supernet.extract(subnet, calibration=data.train_x)
        at = f" at {subnet.input_size} px" if len(space.resolutions) > 1 else ""
        print(f"  {label} sub-network: validation accuracy "
              f"{accuracy(model, resize_images(val_x, subnet.input_size), val_y):.4f} "
              f"on {len(val_y)} images{at} (BatchNorm recalibrated)")
    return 0
