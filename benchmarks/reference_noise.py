"""How much does the reference recipe's own result vary with its seed? (The ceiling of any ranking figure.)

Trains ``--candidates`` of the ranking benchmark's candidates (interleaved over the MAC range,
cheapest first unless ``--pick``) with ``--seeds`` recipe seeds each (same data, same recipe
otherwise) and prints the spread per candidate and the pooled standard deviation. Results go
to the reference cache, so the ranking benchmark's seed-0 runs are reused.

    python benchmarks/reference_noise.py --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 900 --proper-augment --pick 0 --seeds 3
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (add_common_args, add_recipe_args, load_data, reference_cache, reference_recipe,  # noqa: E402
                    spread_by_macs, write_json)

from autoc.evaluate.metrics import spec_macs  # noqa: E402
from autoc.evaluate.recipe import reference_accuracy  # noqa: E402
from autoc.space import load_space  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=60)
    parser.add_argument("--candidates", type=int, default=20, help="size of the ranking benchmark's spread")
    parser.add_argument("--pick", type=int, nargs="+", default=[0], help="indices into the spread (0 = fewest MACs)")
    parser.add_argument("--seeds", type=int, default=3, help="recipe seeds 0 .. N-1 per candidate")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/reference_noise.json"))
    args = parser.parse_args()
    space = load_space(args.space)
    data = load_data(args, space)
    recipe = reference_recipe(args)
    spread = spread_by_macs(space, args.candidates, num_classes=data.num_classes, seed=args.seed)
    rows = []
    for i in args.pick:
        accuracies = []
        for seed in range(args.seeds):
            result = reference_accuracy(spread[i], data, config=dataclasses.replace(recipe, seed=seed),
                                        cache_dir=reference_cache(args))
            accuracies.append(result.accuracy)
            print(f"candidate {i} ({spec_macs(spread[i].netspec()) / 1e6:.1f} MMACs) seed {seed}: "
                  f"{result.accuracy:.4f} ({result.seconds:.0f} s{', cached' if result.cached else ''})", flush=True)
        rows.append({"candidate": i, "accuracies": accuracies, "stdev": statistics.stdev(accuracies)})
        print(f"candidate {i}: mean {statistics.mean(accuracies):.4f}, stdev {rows[-1]['stdev']:.4f} over "
              f"{len(accuracies)} seeds", flush=True)
    pooled = statistics.mean(r["stdev"] ** 2 for r in rows) ** 0.5
    print(f"reference seed-to-seed stdev (pooled over {len(rows)} candidate(s)): {100 * pooled:.2f} points")
    write_json(args.out, {"rows": rows, "pooled_stdev": pooled,
                          "settings": {k: str(v) for k, v in vars(args).items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
