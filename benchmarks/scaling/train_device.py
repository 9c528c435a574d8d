"""Training on each --train-device side by side: seconds per step and the accuracy reached.

For each device in ``--devices``, in one run: one candidate of the ranking spread (``--pick``)
trained by the reference recipe for ``--proper-steps`` steps (same seed, so the accuracies
differ only by the devices' arithmetic), and a fresh supernet trained ``--supernet-steps``
sandwich steps (not cached: timing only). Prints the seconds per step, the speed-up over the
first device and the accuracy of each.

    python -m benchmarks.scaling.train_device --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 300 --proper-augment --supernet-steps 100 --devices cpu cuda
"""
from __future__ import annotations

import argparse
from pathlib import Path


from autoc.errors import ComputeError
from autoc.training.compute import training_device
from autoc.evaluate.recipe import train_from_scratch
from autoc.space import load_space
from autoc.supernet import SupernetConfig, supernet_for_space, train_supernet

from benchmarks.common import (Stopwatch, add_common_args, add_recipe_args, config_key, load_data, record_result,
                               reference_recipe, spread_by_macs, write_json)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=300)
    parser.add_argument("--devices", nargs="+", default=["cpu", "auto"], help="training devices to compare")
    parser.add_argument("--candidates", type=int, default=20, help="size of the ranking benchmark's spread")
    parser.add_argument("--pick", type=int, default=10, help="which candidate of the spread (0 = fewest MACs)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/train_device.json"))
    args = parser.parse_args()
    try:  # a missing GPU fails before any training
        devices = [training_device(name) for name in args.devices]
    except ComputeError as exc:
        raise SystemExit(f"scaling.train_device: {exc}") from None
    space = load_space(args.space)
    data = load_data(args, space)
    recipe = reference_recipe(args)
    candidate = spread_by_macs(space, args.candidates, num_classes=data.num_classes, seed=args.seed)[args.pick]
    rows = []
    for name, device in zip(args.devices, devices):
        trained = train_from_scratch(candidate, data, config=recipe, device=device)
        supernet = supernet_for_space(space, num_classes=data.num_classes)
        config = SupernetConfig(steps=args.supernet_steps, random_subnets=args.random_subnets, seed=args.seed,
                                lr=args.supernet_lr, augment=args.supernet_augment)
        with Stopwatch() as clock:
            train_supernet(supernet, space, data.train_x, data.train_y, config=config, device=device)
        rows.append({"device": str(device), "asked": name, "reference_seconds": trained.seconds,
                     "reference_step_ms": 1000 * trained.seconds / recipe.steps, "reference_accuracy": trained.accuracy,
                     "supernet_seconds": clock.seconds, "supernet_step_ms": 1000 * clock.seconds / config.steps})
        print(f"{name} ({device}): reference {recipe.steps} steps in {trained.seconds:.1f} s "
              f"({rows[-1]['reference_step_ms']:.1f} ms/step, accuracy {trained.accuracy:.4f}); supernet "
              f"{config.steps} sandwich steps in {clock.seconds:.1f} s ({rows[-1]['supernet_step_ms']:.1f} ms/step)",
              flush=True)
    first = rows[0]
    for row in rows[1:]:
        print(f"{row['asked']} vs {first['asked']}: reference {first['reference_seconds'] / row['reference_seconds']:.1f}x, "
              f"supernet {first['supernet_seconds'] / row['supernet_seconds']:.1f}x faster; accuracy "
              f"{100 * (row['reference_accuracy'] - first['reference_accuracy']):+.1f} points")
    write_json(args.out, {"rows": rows, "settings": {k: str(v) for k, v in vars(args).items()}})
    record_result("scaling.train_device", config_key(args, extra="-".join(args.devices)),
                  title=f"Training steps on {' and '.join(args.devices)}: reference recipe and supernet",
                  figures={f"{row['asked']}: {what}": row[key] for row in rows
                           for what, key in (("reference ms/step", "reference_step_ms"),
                                             ("supernet ms/step", "supernet_step_ms"),
                                             ("reference accuracy", "reference_accuracy"))})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
