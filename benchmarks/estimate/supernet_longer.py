"""Does a longer-trained supernet rank candidates better? Continue a cached supernet in warm-restart cycles.

The supernet of the given recipe (trained or loaded from ``<runs-dir>/cache``) is trained further
in ``--cycles`` cycles of ``--cycle-steps`` sandwich steps, each its own cosine schedule from
``--cycle-lr`` (so every cycle ends at a low learning rate, as a finished supernet does). Before
the first cycle and after each, the ranking benchmark's 20 candidates (the ones whose reference
accuracy is cached for this recipe) are estimated and their Kendall tau against the reference
printed: at the search's defaults, and with BatchNorm on 8 x 64 images and 1,000 held-out images.
The continued supernet is never written to the cache (it is not the recipe's supernet).

    python -m benchmarks.estimate.supernet_longer --data ../shared/data/cifar10-jpeg.zip --max-train 10000 --max-val 2500 \\
        --proper-steps 1800 --proper-augment --supernet-steps 1200 --supernet-largest-steps 1200 --supernet-lr 0.02 \\
        --supernet-augment --random-subnets 1 --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from autoc.evaluate.estimate import EstimateConfig, estimate_candidate
from autoc.evaluate.recipe import reference_accuracy
from autoc.latency.validate import kendall_tau
from autoc.space import load_space
from autoc.supernet.train import SupernetConfig, train_supernet

from benchmarks.common import (add_common_args, add_recipe_args, config_key, load_data, record_result,
                               reference_cache, reference_recipe, spread_by_macs, train_device, trained_supernet,
                               write_json)


# "defaults": the search's estimate when this benchmark's figures were measured (256 images; the search's default is 1,000 now)
SETTINGS = {"defaults": EstimateConfig(max_eval=256), "bn8_eval1000": EstimateConfig(calibration_batches=8, max_eval=1000)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=1800)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--cycle-steps", type=int, default=800)
    parser.add_argument("--cycle-lr", type=float, default=0.01)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/supernet_longer.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads or 1)
    space = load_space(args.space)
    data = load_data(args, space)
    recipe, cache = reference_recipe(args), reference_cache(args)
    rows = []
    for candidate in spread_by_macs(space, args.candidates, num_classes=data.num_classes, seed=args.seed):
        proper = reference_accuracy(candidate, data, config=recipe, cache_dir=cache, train_missing=False)
        if proper is not None:
            rows.append((candidate, proper.accuracy))
    if len(rows) < 4:
        raise SystemExit(f"only {len(rows)} of the {args.candidates} candidates have a cached reference for this "
                         "recipe; train them first (estimate.ranking_fidelity --reference-only)")
    run, config = trained_supernet(args, space, data)
    supernet = run.supernet
    print(f"supernet {run.path} ({config.total_steps} steps); {len(rows)} candidates with a cached reference")
    proper = [accuracy for _, accuracy in rows]
    results = []

    def score(extra_steps: int, seconds: float) -> None:
        supernet.eval()
        entry = {"extra_steps": extra_steps, "train_seconds": seconds}
        for name, estimate_config in SETTINGS.items():
            estimates = [estimate_candidate(c, supernet=supernet, data=data, teacher_logits=None,
                                            config=estimate_config)[1].accuracy for c, _ in rows]
            entry[name] = {"kendall_tau": kendall_tau(estimates, proper), "estimates": estimates}
            print(f"+{extra_steps} sandwich steps: {name}: Kendall tau {entry[name]['kendall_tau']:+.3f}, "
                  f"mean estimate {sum(estimates) / len(estimates):.3f}", flush=True)
        results.append(entry)

    score(0, 0.0)
    for cycle in range(1, args.cycles + 1):
        cycle_config = SupernetConfig(steps=args.cycle_steps, random_subnets=config.random_subnets, lr=args.cycle_lr,
                                      augment=config.augment, seed=config.seed + 100 + cycle)
        start = time.perf_counter()
        supernet.train()
        train_supernet(supernet, space, data.train_x, data.train_y, config=cycle_config, device=train_device(args))
        seconds = time.perf_counter() - start
        print(f"cycle {cycle}: {args.cycle_steps} steps in {seconds:.0f} s", flush=True)
        score(cycle * args.cycle_steps, seconds)
        write_json(args.out, {"rows": results, "proper": proper, "settings": {k: str(v) for k, v in vars(args).items()}})
    record_result("estimate.supernet_longer", config_key(args),
                  title="The supernet trained longer: ranking after each cycle of sandwich steps",
                  figures={f"+{entry['extra_steps']} steps, {name} (tau)": entry[name]["kendall_tau"]
                           for entry in results for name in SETTINGS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
