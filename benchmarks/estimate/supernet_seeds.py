"""How much of the supernet estimate is the luck of the supernet's own training, and does averaging supernets help?

Every network the reference recipe has trained (the reference cache) is inherited from supernets
trained with the same recipe but different seeds (``--supernet-seeds``; seed 0's supernet is the
one the other benchmarks use by default), its BatchNorm recalibrated on 2 x 64
training images, and scored on the whole held-out split, so the evaluation's own noise is as small
as this split allows. Printed per group (the ranking benchmark's 20 "spread", the other networks,
all): Kendall tau between two supernets' estimates (1 would mean the supernet's seed does not
matter), each supernet's tau against the mean of each network's recipe seeds, and the tau of the
estimates averaged over the supernets. A supernet missing from ``runs/cache`` is trained first
(~50 min each at 1 thread on this recipe).

    python -m benchmarks.estimate.supernet_seeds --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 1800 --proper-augment --supernet-steps 1200 --supernet-largest-steps 1200 \\
        --supernet-lr 0.02 --supernet-augment --random-subnets 1 --supernet-seeds 0 1
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path


from autoc.latency.validate import kendall_tau
from autoc.space import load_space

from benchmarks.common import (add_common_args, add_recipe_args, add_trained_networks_args, config_key,
                               correct_per_image, load_data, record_result, trained_networks, trained_supernet,
                               write_json)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=1800)
    parser.add_argument("--supernet-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--calibration-batches", type=int, default=2, help="BatchNorm batches of 64")
    add_trained_networks_args(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/estimate_supernet_seeds.json"))
    args = parser.parse_args()
    args.supernet_seeds = list(dict.fromkeys(args.supernet_seeds))  # a repeated seed would agree with itself
    if len(args.supernet_seeds) < 2:
        parser.error("--supernet-seeds needs at least two different seeds to compare supernets")
    space = load_space(args.space)
    data = load_data(args, space)
    trained = trained_networks(args, space, data)
    estimates: dict[int, list[float]] = {}
    for seed in args.supernet_seeds:
        run, _ = trained_supernet(argparse.Namespace(**{**vars(args), "supernet_seed": seed}), space, data)
        print(f"supernet seed {seed}: {run.path}" + (f" (trained now, {run.train_seconds:.0f} s)" if run.trained_now
                                                    else ""), flush=True)
        start = time.perf_counter()
        estimates[seed] = [float(correct_per_image(n.candidate, run.supernet, data,
                                                   calibration_batches=args.calibration_batches).float().mean())
                           for n in trained]
        print(f"supernet seed {seed}: {len(trained)} networks estimated on {len(data.val_y)} images "
              f"in {time.perf_counter() - start:.0f} s (mean estimate {statistics.mean(estimates[seed]):.4f})",
              flush=True)
    groups = {"spread": [i for i, n in enumerate(trained) if n.in_spread],
              "others": [i for i, n in enumerate(trained) if not n.in_spread],
              "all": list(range(len(trained)))}
    averaged = [statistics.mean(estimates[s][i] for s in args.supernet_seeds) for i in range(len(trained))]
    figures = []
    for group, members in groups.items():
        if len(members) < 4:
            continue
        truth = [trained[i].mean_accuracy for i in members]
        each = {s: kendall_tau([estimates[s][i] for i in members], truth) for s in args.supernet_seeds}
        pairs = {f"{a}-{b}": kendall_tau([estimates[a][i] for i in members], [estimates[b][i] for i in members])
                 for a, b in itertools.combinations(args.supernet_seeds, 2)}
        row = {"group": group, "networks": len(members), "tau_each": each,
               "tau_averaged": kendall_tau([averaged[i] for i in members], truth),
               "supernets_agree": statistics.mean(pairs.values()), "supernet_pairs": pairs}
        figures.append(row)
        print(f"{group} ({len(members)}): two supernets vs each other {row['supernets_agree']:+.3f}"
              + (f" ({', '.join(f'{p} {t:+.3f}' for p, t in pairs.items())})" if len(pairs) > 1 else "")
              + "; vs the mean of seeds: " + ", ".join(f"supernet {s} {t:+.3f}" for s, t in each.items())
              + f", averaged over {len(each)} {row['tau_averaged']:+.3f}", flush=True)
    write_json(args.out, {"figures": figures, "settings": {k: str(v) for k, v in vars(args).items()},
                          "networks": [{"spread": n.in_spread, "mean": n.mean_accuracy,
                                        "estimates": {s: estimates[s][i] for s in args.supernet_seeds}}
                                       for i, n in enumerate(trained)]})
    record_result("estimate.supernet_seeds", config_key(args),
                  title=f"Estimates from supernets of training seeds {' '.join(map(str, args.supernet_seeds))}",
                  figures={f"{r['group']} ({r['networks']}): {what}": value for r in figures
                           for what, value in [("supernets agree (tau)", r["supernets_agree"]),
                                               *((f"supernet {s} vs the mean of seeds (tau)", t)
                                                 for s, t in r["tau_each"].items()),
                                               ("averaged vs the mean of seeds (tau)", r["tau_averaged"])]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
