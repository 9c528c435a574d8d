"""How much of the supernet estimate is the noise of its own evaluation, and how many images does it need?

Over every network the reference recipe has trained (the reference cache), each network is
inherited from the supernet and its BatchNorm recalibrated on ``--calibrations`` batch counts
(64 images each), then scored image by image on the whole held-out split. From those per-image
results, for each evaluation size in ``--eval-sizes``, ``--subsets`` class-stratified subsets
(as ``EstimateConfig.max_eval`` draws them) give: Kendall tau against the mean of each network's
recipe seeds (mean over subsets, and its range), and tau between two subsets' estimates (the
estimate's repeatability: 1 would be a noiseless estimate). Groups: the ranking benchmark's 20
("spread"), the other networks, all.

    python benchmarks/estimate_repeatability.py --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 1800 --proper-augment --supernet-steps 1200 --supernet-largest-steps 1200 \\
        --supernet-lr 0.02 --supernet-augment --random-subnets 1
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _bench import add_common_args, add_recipe_args, kendall_tau, load_data, trained_supernet, write_json  # noqa: E402
from estimate_with_size import add_trained_networks_args, trained_networks  # noqa: E402

from autoc.evaluate.estimate import build_from_supernet, eval_subset  # noqa: E402
from autoc.training.loop import predict_logits, recalibrate_batchnorm  # noqa: E402
from autoc.space import load_space  # noqa: E402


def correct_per_image(candidate, supernet, data, *, calibration_batches: int) -> torch.Tensor:
    """Bool per held-out image: the inherited, recalibrated sub-network's top-1 is right."""
    model = build_from_supernet(candidate, supernet=supernet)
    recalibrate_batchnorm(model, data.train_x, batches=calibration_batches)
    model.eval()
    with torch.inference_mode():
        return predict_logits(model, data.val_x).argmax(1) == data.val_y


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=1800)
    parser.add_argument("--calibrations", type=int, nargs="+", default=[2, 8], help="BatchNorm batches of 64")
    parser.add_argument("--eval-sizes", type=int, nargs="+", default=[256, 512, 1000, 2500])
    parser.add_argument("--subsets", type=int, default=8, help="random subsets per evaluation size")
    add_trained_networks_args(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/estimate_repeatability.json"))
    args = parser.parse_args()
    space = load_space(args.space)
    data = load_data(args, space)
    trained = trained_networks(args, space, data)
    run, _ = trained_supernet(args, space, data)
    networks = []
    for n, network in enumerate(trained):
        start = time.perf_counter()
        correct = {cal: correct_per_image(network.candidate, run.supernet, data, calibration_batches=cal)
                   for cal in args.calibrations}
        networks.append({"spread": network.in_spread, "mean": network.mean_accuracy, "correct": correct})
        print(f"network {n + 1}/{len(trained)}: " + ", ".join(f"BN on {cal} x 64: {c.float().mean():.4f}"
                                                           for cal, c in correct.items())
              + f" on {len(data.val_y)} images ({time.perf_counter() - start:.1f} s)", flush=True)
    groups = {"spread": [r for r in networks if r["spread"]], "others": [r for r in networks if not r["spread"]],
              "all": networks}
    for (cal_a, cal_b), (group, members) in itertools.product(itertools.combinations(args.calibrations, 2),
                                                               groups.items()):
        if len(members) >= 4:  # on the whole split: how far the BatchNorm calibration alone reorders the networks
            tau = kendall_tau(*([float(r["correct"][cal].float().mean()) for r in members] for cal in (cal_a, cal_b)))
            print(f"{group} ({len(members)}): BN on {cal_a} x 64 vs {cal_b} x 64, whole split: Kendall tau {tau:+.3f}",
                  flush=True)
    figures = []
    for cal, size in itertools.product(args.calibrations, args.eval_sizes):
        subsets = [eval_subset(data.val_y, size, seed=s) for s in range(args.subsets if size < len(data.val_y) else 1)]
        for group, members in groups.items():
            if len(members) < 4:
                continue
            truth = [r["mean"] for r in members]
            estimates = [[float(r["correct"][cal][keep].float().mean()) for r in members] for keep in subsets]
            vs_truth = [kendall_tau(e, truth) for e in estimates]
            between = [kendall_tau(a, b) for a, b in itertools.combinations(estimates, 2)]
            row = {"calibration_batches": cal, "eval_images": min(size, len(data.val_y)), "group": group,
                   "networks": len(members), "tau_mean": statistics.mean(vs_truth), "tau_min": min(vs_truth),
                   "tau_max": max(vs_truth), "repeatability": statistics.mean(between) if between else 1.0,
                   "estimate_stdev_points": 100 * statistics.mean(statistics.stdev(e) for e in estimates)}
            figures.append(row)
            print(f"BN on {cal} x 64, {row['eval_images']} images, {group} ({len(members)}): Kendall tau vs the mean "
                  f"of seeds {row['tau_mean']:+.3f} (subsets {row['tau_min']:+.3f} to {row['tau_max']:+.3f}), "
                  f"two subsets vs each other {row['repeatability']:+.3f}, estimates' stdev "
                  f"{row['estimate_stdev_points']:.2f} points", flush=True)
    write_json(args.out, {"figures": figures, "settings": {k: str(v) for k, v in vars(args).items()},
                          "networks": [{"spread": r["spread"], "mean": r["mean"],
                                        "accuracy": {cal: float(c.float().mean()) for cal, c in r["correct"].items()}}
                                       for r in networks]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
