"""MobileNetV2 width-multiplier baselines (0.35-1.0, fp32 and uniform int8), trained by one recipe.

MobileNetV2 inside the ``mbv2-cifar`` space: the space's largest depths and widths (MobileNetV2's
[1, 2, 3, 4, 3, 3, 1] blocks of [16, 24, 32, 64, 96, 160, 320] channels, 32-channel stem,
1280-channel head), its ops (3x3 depthwise, expansion 6; 1 in the first block), and the width
multiplier applied as a uniform keep ratio on every layer (rounded to multiples of 8).
Writes ``runs/<study>/baselines.json`` (schema ``autoc.baselines/1``) for ``autoc report``.

    python benchmarks/baselines.py --data ../shared/data/cifar10-jpeg.zip --study STUDY
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _bench import (add_common_args, add_recipe_args, at_least_one, load_data, parse_shard, reference_cache,  # noqa: E402
                    reference_recipe, train_device, write_json)

from autoc.arch.config import BlockOp  # noqa: E402
from autoc.candidate import Candidate  # noqa: E402
from autoc.arch.policy import CompressionPolicy, LayerPolicy  # noqa: E402
from autoc.data.datasets import DatasetSplit  # noqa: E402
from autoc.evaluate.metrics import size_bytes  # noqa: E402
from autoc.evaluate.recipe import reference_accuracy  # noqa: E402
from autoc.training.loop import TrainConfig  # noqa: E402
from autoc.latency.device import open_latency_model  # noqa: E402
from autoc.space import SearchSpace, load_space  # noqa: E402

MULTIPLIERS = (0.35, 0.5, 0.75, 1.0)
# The search-quality comparisons' budgets: these baselines' predicted latencies.
BUDGET_BASELINES = ("MobileNetV2-0.5 fp32", "MobileNetV2-0.75 fp32", "MobileNetV2-1 fp32")
SCHEMA = "autoc.baselines/1"


def mobilenet_v2(space: SearchSpace, *, multiplier: float, int8: bool, num_classes: int) -> Candidate:
    largest = space.largest_arch(num_classes=num_classes)
    stages = tuple(
        replace(stage, ops=tuple(BlockOp(kernel=3, expansion=1 if s == 0 else 6) for _ in stage.ops))
        for s, stage in enumerate(largest.stages)
    )
    arch = replace(largest, stages=stages)
    quant = {"precision": "int8", "weight_bits": 8, "act_bits": 8} if int8 else {}
    layer = LayerPolicy(keep_ratio=multiplier, **quant)
    names = Candidate(arch, CompressionPolicy()).full_netspec().layer_names()
    return Candidate(arch, CompressionPolicy.from_mapping({name: layer for name in names}))


def baseline_family(space: SearchSpace, *, num_classes: int) -> list[tuple[str, Candidate]]:
    return [
        (f"MobileNetV2-{m:g} {'int8' if int8 else 'fp32'}", mobilenet_v2(space, multiplier=m, int8=int8,
                                                                         num_classes=num_classes))
        for m in MULTIPLIERS for int8 in (False, True)
    ]


def train_baselines(space, data, latency, *, recipe: TrainConfig, cache_dir: Path | None,
                    selection: DatasetSplit | None = None, log=print, shard: tuple[int, int] = (0, 1),
                    device: torch.device | None = None, seeds: int = 1) -> list[dict]:
    """Each baseline's held-out accuracy, and its accuracy on ``selection`` when given (the split
    a comparison chooses the best baseline on, as the search chooses its finalist). ``shard``
    (K, N): only every N-th baseline from the K-th (processes sharing the cache). ``seeds``:
    recipe seeds from the recipe's on, trained seed by seed across the family (a run cut short leaves
    equal counts); "accuracy" stays seed 0's, "seed_accuracies" holds them all."""
    family = baseline_family(space, num_classes=data.num_classes)[shard[0]::shard[1]]
    rows = [{"name": name, "latency_ms": latency.predict(c.netspec(), c.policy),
             "size_bytes": size_bytes(c.netspec(), c.policy), "seed_accuracies": [],
             "seed_selection_accuracies": []} for name, c in family]
    for seed in range(seeds):
        for row, (name, candidate) in zip(rows, family):
            trained = reference_accuracy(candidate, data, config=replace(recipe, seed=recipe.seed + seed),
                                         cache_dir=cache_dir, selection=selection, device=device)
            row["seed_accuracies"].append(trained.accuracy)
            chosen_on = ""
            if trained.selection_accuracy is not None:
                row["seed_selection_accuracies"].append(trained.selection_accuracy)
                chosen_on = f"  selection {trained.selection_accuracy:.4f}"
            if seed == 0:
                row["accuracy"], row["train_seconds"] = trained.accuracy, trained.seconds
                if trained.selection_accuracy is not None:
                    row["selection_accuracy"] = trained.selection_accuracy
            log(f"{name:<24} seed {recipe.seed + seed} accuracy {trained.accuracy:.4f}{chosen_on}  "
                f"{row['latency_ms']:.3f} ms  {row['size_bytes'] / 1024:.0f} kB  "
                f"({trained.seconds:.0f} s{', cached' if trained.cached else ''})", flush=True)
    return rows


def write_baselines(path: Path, rows: list[dict], *, recipe: TrainConfig) -> Path:
    """``recipe`` is recorded so a comparison can check its own models were trained the same way."""
    keep = ("name", "accuracy", "selection_accuracy", "latency_ms", "size_bytes", "seed_accuracies",
            "seed_selection_accuracies")
    write_json(path, {"schema": SCHEMA, "recipe": dataclasses.asdict(recipe),
                      "baselines": [{k: row[k] for k in keep if k in row} for row in rows]})
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=40)
    parser.add_argument("--device", default="host")
    parser.add_argument("--study", required=True, help="writes runs/<study>/baselines.json")
    parser.add_argument("--selection", type=int, default=None,
                        help="also score every baseline on this many training-pool images kept out of training "
                             "(search_quality.py --selection chooses the best baseline on them)")
    parser.add_argument("--shard", default="0/1",
                        help="K/N: train only every N-th baseline from the K-th (run N processes, then once "
                             "without --shard to write baselines.json from the cache)")
    parser.add_argument("--seeds", type=at_least_one, default=1,
                        help="recipe seeds per baseline (from --seed on): comparisons can then use their means")
    args = parser.parse_args()
    shard = parse_shard(args.shard)
    space = load_space(args.space)
    data = load_data(args, space)
    latency = open_latency_model(args.device, runs_dir=args.runs_dir, space=space, progress=True)
    recipe = reference_recipe(args)
    selection = data.selection_as_val() if args.selection else None
    rows = train_baselines(space, data, latency, recipe=recipe, cache_dir=reference_cache(args), selection=selection,
                           shard=shard, device=train_device(args), seeds=args.seeds)
    if shard[1] > 1:
        return 0  # a part of the family: baselines.json is written by the run over all of it
    print(write_baselines(args.runs_dir / args.study / "baselines.json", rows, recipe=recipe))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
