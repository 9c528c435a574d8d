"""Does the search space beat the MobileNetV2 family at equal latency, whatever the estimator?

The ranking candidates (``estimate.ranking_fidelity``'s spread of random `mbv2-cifar` candidates:
architecture, per-layer keep ratios and precisions) and the MobileNetV2 baselines
(``search.baselines``), all trained by the same reference recipe and read from the reference
cache (nothing is trained here), with their predicted latency on one device profile. At
the three budgets of ``search.quality`` (the predicted latencies of MobileNetV2-0.5/0.75/
1.0 fp32) it prints the best baseline within the budget, the best random candidate within
it, and how many of the random candidates beat that baseline: what a search with a perfect
estimator would gain from these few samples of the space. The candidates' accuracies are
held-out figures of one seed each; the best of many is an optimistic pick, as the best
baseline is.

Then, over every network the cache holds for this recipe (the spread, the baselines, every
search's finalists; each by the mean of its cached recipe seeds), it prints how accuracy goes
with predicted latency (Spearman, Kendall, and the mean and best per latency band): whether a
larger budget buys accuracy at this recipe.

    python -m benchmarks.search.space_vs_baselines --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 1800 --proper-augment
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
from pathlib import Path

import scipy.stats


from autoc.candidate import Candidate
from autoc.latency.device import open_latency_model
from autoc.latency.validate import kendall_tau
from autoc.space import load_space

from benchmarks.common import (BUDGET_BASELINES, add_common_args, add_recipe_args, at_least_one, baseline_family,
                               cached_entries, config_key, load_data, record_result, reference_cache,
                               reference_recipe, seed_accuracies, spread_by_macs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=900)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--device", default="host")
    parser.add_argument("--seeds", type=at_least_one, default=1,
                        help="compare each network's mean over recipe seeds 0..N-1 (networks without all N cached "
                             "are left out): one seed's best of many is a lucky pick")
    args = parser.parse_args()
    space = load_space(args.space)
    data = load_data(args, space)
    recipe, cache = reference_recipe(args), reference_cache(args)
    latency = open_latency_model(args.device, runs_dir=args.runs_dir, space=space, progress=True)

    def trained(label, candidate):
        accuracies = seed_accuracies(candidate, data, recipe=recipe, cache=cache, seeds=args.seeds, train_missing=False)
        if None in accuracies:
            return None
        return {"name": label, "accuracy": statistics.mean(accuracies),
                "latency_ms": latency.predict(candidate.netspec(), candidate.policy)}

    baselines = [row for name, c in baseline_family(space, num_classes=data.num_classes) if (row := trained(name, c))]
    spread = [row for i, c in enumerate(spread_by_macs(space, args.candidates, num_classes=data.num_classes,
                                                        seed=args.seed)) if (row := trained(f"random {i}", c))]
    print(f"{len(baselines)} baselines and {len(spread)} random candidates with cached results "
          f"({recipe.steps} steps, augment {recipe.augment}; the mean of {args.seeds} recipe seed(s)); "
          f"latency predicted on {args.device}")
    for row in sorted(baselines + spread, key=lambda r: r["latency_ms"]):
        print(f"  {row['name']:<24} {row['accuracy']:.4f}  {row['latency_ms']:.3f} ms")
    budgets = {b["name"]: b["latency_ms"] for b in baselines if b["name"] in BUDGET_BASELINES}
    if len(budgets) < len(BUDGET_BASELINES):
        print(f"missing budget baselines {sorted(set(BUDGET_BASELINES) - set(budgets))}: train them with "
              f"search.baselines, the same recipe and --seeds {args.seeds}")
        return 1
    figures = {}
    for name in BUDGET_BASELINES:
        budget = budgets[name]
        base = max((b for b in baselines if b["latency_ms"] <= budget), key=lambda b: b["accuracy"])
        within = [r for r in spread if r["latency_ms"] <= budget]
        if not within:
            print(f"budget {budget:.3f} ms ({name}): best baseline {base['name']} {base['accuracy']:.4f}; "
                  "no random candidate within it")
            continue
        best = max(within, key=lambda r: r["accuracy"])
        beat = sum(r["accuracy"] > base["accuracy"] for r in within)
        print(f"budget {budget:.3f} ms ({name}): best baseline {base['name']} {base['accuracy']:.4f}; best of "
              f"{len(within)} random candidates within it {best['accuracy']:.4f} ({best['name']}, "
              f"{best['latency_ms']:.3f} ms): {100 * (best['accuracy'] - base['accuracy']):+.1f} points; "
              f"{beat} of {len(within)} beat the baseline")
        figures[f"budget {budget:.3f} ms: best random candidate vs {base['name']} (points)"] = \
            100 * (best["accuracy"] - base["accuracy"])
        figures[f"budget {budget:.3f} ms: random candidates beating it"] = f"{beat} of {len(within)}"
    figures |= accuracy_by_latency(cache, data_fingerprint=data.fingerprint, recipe=dataclasses.asdict(recipe),
                                   latency=latency)
    record_result("search.space_vs_baselines", config_key(args),
                  title="The search space without a search: trained random candidates vs the baselines per budget",
                  figures=figures)
    return 0


def accuracy_by_latency(cache: Path, *, data_fingerprint: str, recipe: dict, latency) -> dict:
    """Every cached network of this recipe (any seed) by the mean of its cached seeds, against predicted latency."""
    runs: dict[str, list[float]] = {}
    for entry in cached_entries(cache, data_fingerprint=data_fingerprint):
        if {**entry["recipe"], "seed": recipe["seed"]} == recipe:
            runs.setdefault(json.dumps(entry["candidate"], sort_keys=True), []).append(float(entry["accuracy"]))
    rows = sorted((latency.predict((c := Candidate.from_dict(json.loads(key))).netspec(), c.policy),
                   statistics.mean(accuracies)) for key, accuracies in runs.items())
    if len(rows) < 3:
        print(f"accuracy by latency: {len(rows)} cached network(s), too few")
        return {}
    ms, accuracy = [r[0] for r in rows], [r[1] for r in rows]
    spearman, tau = scipy.stats.spearmanr(ms, accuracy)[0], kendall_tau(ms, accuracy)
    print(f"accuracy by latency over all {len(rows)} cached networks of this recipe ({sum(map(len, runs.values()))} "
          f"runs): Spearman {spearman:+.3f}, Kendall tau {tau:+.3f}")
    edges = [0.0, *statistics.quantiles(ms, n=4), math.inf]
    for low, high in zip(edges, edges[1:]):
        band = [a for m, a in rows if low <= m < high]
        if band:
            print(f"  {low:.3f}-{high:.3f} ms: {len(band)} networks, mean {statistics.mean(band):.4f}, "
                  f"best {max(band):.4f}")
    return {f"accuracy vs predicted latency over {len(rows)} trained networks (Spearman)": spearman,
            f"accuracy vs predicted latency over {len(rows)} trained networks (Kendall tau)": tau}


if __name__ == "__main__":
    raise SystemExit(main())
