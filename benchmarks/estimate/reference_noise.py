"""How much does the reference recipe's own result vary with its seed? (The ceiling of any ranking figure.)

Trains ``--candidates`` of the ranking benchmark's candidates (interleaved over the MAC range,
cheapest first unless ``--pick``) with ``--seeds`` recipe seeds each (same data, same recipe
otherwise) and prints the spread per candidate and the pooled standard deviation. Results go
to the reference cache, so the ranking benchmark's seed-0 runs are reused. Then, from the
whole spread's seed-0 results (cached ones only) and that stdev, the ranking ceiling: the
Kendall tau a perfect estimator (each candidate's expected accuracy) would reach against one
reference run, and two reference runs of different seeds against each other (simulated:
true spread = observed variance minus the noise variance, Gaussian seed noise).

    python -m benchmarks.estimate.reference_noise --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 900 --proper-augment --pick 0 --seeds 3

``--compare-steps N ...`` also sets the spread's cached seed-0 results of this recipe beside
those of the same recipe at N steps: each length's spread, how MACs rank it, and how the two
lengths rank the candidates alike (does a longer reference separate architectures more?).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path


from autoc.candidate import Candidate
from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.evaluate.metrics import spec_macs
from autoc.evaluate.recipe import reference_accuracy
from autoc.latency.validate import kendall_tau
from autoc.space import load_space

from benchmarks.common import (add_common_args, add_recipe_args, config_key, load_data, ranking_ceiling,
                               record_result, reference_cache, reference_recipe, spread_by_macs, train_device,
                               write_json)


def compare_lengths(args, spread, data, recipe) -> list[dict]:
    """Per step count (this recipe's first): the spread's cached seed-0 accuracies, their stdev, MACs tau,
    and Kendall tau against this recipe's over the candidates both have."""
    macs = [spec_macs(c.netspec()) for c in spread]
    by_steps = {}
    for steps in [recipe.steps, *args.compare_steps]:
        config = dataclasses.replace(recipe, steps=steps)
        results = [reference_accuracy(c, data, config=config, cache_dir=reference_cache(args), train_missing=False)
                   for c in spread]
        by_steps[steps] = [None if r is None else r.accuracy for r in results]
    ours, out = by_steps[recipe.steps], []
    for steps, accuracies in by_steps.items():
        have = [i for i, a in enumerate(accuracies) if a is not None]
        both = [i for i in have if ours[i] is not None]
        row = {"steps": steps, "candidates": len(have)}
        if len(have) > 2:
            row.update(mean=statistics.mean(accuracies[i] for i in have),
                       stdev=statistics.stdev(accuracies[i] for i in have),
                       macs_tau=kendall_tau([macs[i] for i in have], [accuracies[i] for i in have]))
        if steps != recipe.steps and len(both) > 2:
            row["tau_vs_this"] = kendall_tau([ours[i] for i in both], [accuracies[i] for i in both])
            row["common"] = len(both)
        out.append(row)
        print(f"{steps} steps: {len(have)} of the {len(spread)} cached" + (
            f", mean {row['mean']:.4f}, stdev {100 * row['stdev']:.2f} points, MACs tau {row['macs_tau']:+.3f}"
            if "mean" in row else "") + (
            f"; Kendall tau against {recipe.steps} steps over {row['common']} common: {row['tau_vs_this']:+.3f}"
            if "tau_vs_this" in row else ""), flush=True)
    return out


def all_fp32(candidate: Candidate) -> Candidate:
    """The candidate with every layer's quantisation dropped (keep ratios and sparsity as they are):
    trained from scratch it shows what quantisation-aware training adds to the recipe's noise."""
    layers = {name: LayerPolicy(keep_ratio=layer.keep_ratio, sparsity=layer.sparsity)
              for name, layer in candidate.policy.layers}
    return dataclasses.replace(candidate, policy=CompressionPolicy.from_mapping(layers))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=60)
    parser.add_argument("--candidates", type=int, default=20, help="size of the ranking benchmark's spread")
    parser.add_argument("--pick", type=int, nargs="+", default=[0], help="indices into the spread (0 = fewest MACs)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="recipe seeds 0 .. N-1 per candidate (1: no noise figure, e.g. with --compare-steps)")
    parser.add_argument("--compare-steps", type=int, nargs="+", default=[],
                        help="set this recipe's cached spread beside the same recipe at these step counts")
    parser.add_argument("--precision", choices=("policy", "fp32"), default="policy",
                        help="fp32: train the picked candidates with their quantisation dropped (same shapes)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/reference_noise.json"))
    args = parser.parse_args()
    space = load_space(args.space)
    data = load_data(args, space)
    recipe = reference_recipe(args)
    spread = spread_by_macs(space, args.candidates, num_classes=data.num_classes, seed=args.seed)
    if args.precision == "fp32":
        spread = [all_fp32(c) for c in spread]
    # Seed by seed over the picked candidates, so a run cut short leaves them with equal seed counts.
    by_candidate: dict[int, list[float]] = {i: [] for i in args.pick}
    for seed in range(args.seeds):
        for i in args.pick:
            result = reference_accuracy(spread[i], data, config=dataclasses.replace(recipe, seed=seed),
                                        cache_dir=reference_cache(args), device=train_device(args))
            by_candidate[i].append(result.accuracy)
            print(f"candidate {i} ({spec_macs(spread[i].netspec()) / 1e6:.1f} MMACs) seed {seed}: "
                  f"{result.accuracy:.4f} ({result.seconds:.0f} s{', cached' if result.cached else ''})", flush=True)
    rows = [{"candidate": i, "accuracies": accuracies,
             "stdev": statistics.stdev(accuracies) if len(accuracies) > 1 else None}
            for i, accuracies in by_candidate.items()]
    for row in rows:
        if row["stdev"] is not None:
            print(f"candidate {row['candidate']}: mean {statistics.mean(row['accuracies']):.4f}, stdev "
                  f"{row['stdev']:.4f} over {len(row['accuracies'])} seeds", flush=True)
    spreads = [r["stdev"] for r in rows if r["stdev"] is not None]
    pooled = statistics.mean(s**2 for s in spreads) ** 0.5 if spreads else None
    if pooled is not None:
        print(f"reference seed-to-seed stdev (pooled over {len(spreads)} candidate(s)): {100 * pooled:.2f} points")
    seed0 = [reference_accuracy(c, data, config=recipe, cache_dir=reference_cache(args), train_missing=False)
             for c in spread]
    observed = [r.accuracy for r in seed0 if r is not None]
    ceiling = ranking_ceiling(observed, noise=pooled) if len(observed) > 2 and pooled is not None else None
    if ceiling:
        print(f"ranking ceiling over the {len(observed)} references of the spread (observed stdev "
              f"{100 * statistics.pstdev(observed):.2f} points): a perfect estimator vs one reference run "
              f"tau {ceiling['perfect']:.3f}; two reference runs vs each other tau {ceiling['two_runs']:.3f}")
    lengths = compare_lengths(args, spread, data, recipe) if args.compare_steps else None
    figures = {"pooled seed-to-seed stdev (points)": None if pooled is None else 100 * pooled}
    if ceiling:
        figures |= {"perfect estimator vs one reference run (tau)": ceiling["perfect"],
                    "two reference runs vs each other (tau)": ceiling["two_runs"]}
    record_result("estimate.reference_noise", config_key(args),
                  title=f"Reference recipe's seed noise: candidates {' '.join(map(str, args.pick))}, {args.seeds} seeds",
                  figures=figures, rows=rows)
    write_json(args.out, {"rows": rows, "pooled_stdev": pooled, "ranking_ceiling": ceiling, "lengths": lengths,
                          "settings": {k: str(v) for k, v in vars(args).items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
