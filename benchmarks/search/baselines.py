"""MobileNetV2 width-multiplier baselines (0.35-1.0, fp32 and uniform int8), trained by one recipe.

MobileNetV2 inside the ``mbv2-cifar`` space: the space's largest depths and widths (MobileNetV2's
[1, 2, 3, 4, 3, 3, 1] blocks of [16, 24, 32, 64, 96, 160, 320] channels, 32-channel stem,
1280-channel head), its ops (3x3 depthwise, expansion 6; 1 in the first block), and the width
multiplier applied as a uniform keep ratio on every layer (rounded to multiples of 8).
Writes ``runs/<study>/baselines.json`` (schema ``autoc.baselines/1``) for ``autoc report``.

    python -m benchmarks.search.baselines --data ../shared/data/cifar10-jpeg.zip --study STUDY
"""
from __future__ import annotations

import argparse


from autoc.latency.device import open_latency_model
from autoc.space import load_space

from benchmarks.common import (add_common_args, add_recipe_args, at_least_one, config_key, load_data, parse_shard,
                               record_result, reference_cache, reference_recipe, train_baselines, train_device,
                               write_baselines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=40)
    parser.add_argument("--device", default="host")
    parser.add_argument("--study", required=True, help="writes runs/<study>/baselines.json")
    parser.add_argument("--selection", type=int, default=None,
                        help="also score every baseline on this many training-pool images kept out of training "
                             "(search.quality --selection chooses the best baseline on them)")
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
    record_result("search.baselines", config_key(args), title=f"MobileNetV2 baselines by the reference recipe "
                  f"({args.proper_steps} steps): accuracy at seed {args.seed}, predicted {args.device} latency",
                  figures={f"{row['name']}: {what}": row[key] for row in rows
                           for what, key in (("accuracy", "accuracy"), ("predicted ms", "latency_ms"))})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
