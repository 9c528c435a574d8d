"""Does the supernet estimate, taken together with the network's size, rank candidates better than either alone?

Against the 1800-step reference the supernet estimate and the parameter count each rank the
ranking benchmark's 20 candidates weakly (tau ~0.2 and ~0.3), but they disagree with each other:
the estimate sees something size does not. This scores, over every network the reference recipe
has trained (the reference cache: the 20-candidate spread, the baselines, the finalists of earlier
searches), the estimate, parameters, MACs and their equal-weight combinations (the mean of the two
ranks; the mean of the two z-scores over a random sample of the space, a score one candidate at a
time as a search needs). The spread is where the combination was first seen; the other networks
are the check it was not chosen for (they were not used to choose it).

    python -m benchmarks.estimate.with_size --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 1800 --proper-augment --supernet-steps 1200 \\
        --supernet-largest-steps 1200 --supernet-lr 0.02 --supernet-augment --random-subnets 1
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from autoc.candidate import Candidate
from autoc.evaluate.estimate import estimate_candidate
from autoc.evaluate.metrics import spec_macs
from autoc.latency.validate import kendall_tau
from autoc.space import load_space
from autoc.supernet import random_candidate

from benchmarks.common import (add_common_args, add_max_eval_arg, add_recipe_args, add_trained_networks_args,
                               config_key, estimate_config, load_data, parameter_count, record_result,
                               trained_networks, trained_supernet, write_json)


def log_params(candidate: Candidate) -> float:
    return math.log(parameter_count(candidate))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=1800)
    parser.add_argument("--space-sample", type=int, default=40,
                        help="random candidates of the space whose estimate and size set the z-score scales")
    add_trained_networks_args(parser)
    add_max_eval_arg(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/estimate_with_size.json"))
    args = parser.parse_args()
    space = load_space(args.space)
    data = load_data(args, space)
    networks = trained_networks(args, space, data)
    run, _ = trained_supernet(args, space, data)
    config = estimate_config(args)

    def estimate(candidate: Candidate) -> float:
        return estimate_candidate(candidate, supernet=run.supernet, data=data, teacher_logits=None,
                                  config=config)[1].accuracy

    # Scales of the one-at-a-time score: the estimate's and log-parameters' spread over random candidates.
    rng = random.Random(args.seed + 1)
    sample = [random_candidate(space, rng, num_classes=data.num_classes) for _ in range(args.space_sample)]
    sample_estimates = [estimate(c) for c in sample]
    sample_sizes = [log_params(c) for c in sample]
    scales = {"estimate": (statistics.mean(sample_estimates), statistics.stdev(sample_estimates)),
              "log_params": (statistics.mean(sample_sizes), statistics.stdev(sample_sizes))}
    print(f"over {args.space_sample} random candidates: estimate {scales['estimate'][0]:.3f} +- "
          f"{scales['estimate'][1]:.3f}, log parameters {scales['log_params'][0]:.2f} +- {scales['log_params'][1]:.2f}",
          flush=True)

    rows = [{"candidate": n.candidate.to_dict(), "spread": n.in_spread, "accuracy": n.accuracy,
             "mean_accuracy": n.mean_accuracy, "estimate": estimate(n.candidate), "log_params": log_params(n.candidate),
             "macs": spec_macs(n.candidate.netspec())} for n in networks]
    for row in rows:
        row["z_score"] = sum((row[name] - mu) / sd for name, (mu, sd) in scales.items()) / 2

    figures = {}
    for group, members in (("spread", [r for r in rows if r["spread"]]), ("others", [r for r in rows if not r["spread"]]),
                           ("all", rows)):
        if len(members) < 4:
            continue
        scores = {name: np.array([r[name] for r in members]) for name in ("estimate", "log_params", "macs", "z_score")}
        scores["rank_mean(estimate, params)"] = rankdata(scores["estimate"]) + rankdata(scores["log_params"])
        scores["rank_mean(estimate, macs)"] = rankdata(scores["estimate"]) + rankdata(scores["macs"])
        truths = {"seed 0": [r["accuracy"] for r in members], "mean of seeds": [r["mean_accuracy"] for r in members]}
        figures[group] = {truth: {name: kendall_tau(list(score), values) for name, score in scores.items()}
                          for truth, values in truths.items()}
        print(f"{group}: {len(members)} networks, accuracy {min(truths['seed 0']):.3f}-{max(truths['seed 0']):.3f}")
        for truth, taus in figures[group].items():
            print(f"  Kendall tau vs {truth}: " + ", ".join(f"{name} {tau:+.3f}" for name, tau in taus.items()))
    write_json(args.out, {"figures": figures, "scales": scales, "rows": rows,
                          "settings": {k: str(v) for k, v in vars(args).items()}})
    record_result("estimate.with_size", config_key(args),
                  title="The estimate, the size and both together against the reference, over every trained network",
                  figures={f"{group}: {name} vs the mean of seeds (tau)": tau for group, by_truth in figures.items()
                           for name, tau in by_truth["mean of seeds"].items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
