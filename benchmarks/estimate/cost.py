"""Cost of one accuracy estimate (inherit from the supernet + compress + BatchNorm recalibration +
default fine-tune + evaluation) for candidates across the MAC range, at a given thread count.

Uses the same cached supernet as estimate.ranking_fidelity when given the same data and supernet
flags (it trains one otherwise). Each candidate is estimated ``--repeats`` times; the
fastest run is its cost (other load only ever adds time).

    python -m benchmarks.estimate.cost --data ../shared/data/cifar10-jpeg.zip --threads 2
"""
from __future__ import annotations

import argparse
import statistics


from autoc.evaluate.estimate import estimate_candidate
from autoc.evaluate.metrics import spec_macs
from autoc.space import load_space

from benchmarks.common import (add_common_args, add_max_eval_arg, config_key, estimate_config, load_data,
                               record_result, spread_by_macs, trained_supernet)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    add_max_eval_arg(parser)
    args = parser.parse_args()

    space = load_space(args.space)
    data = load_data(args, space)
    run, _ = trained_supernet(args, space, data)
    config = estimate_config(args)
    costs = []
    for candidate in spread_by_macs(space, args.candidates, num_classes=data.num_classes, seed=args.seed):
        seconds = min(estimate_candidate(candidate, supernet=run.supernet, data=data, teacher_logits=None,
                                         config=config)[1].seconds for _ in range(args.repeats))
        costs.append(seconds)
        print(f"MMACs {spec_macs(candidate.netspec()) / 1e6:6.1f}  estimate {seconds:.2f} s", flush=True)
    print(f"estimate cost at default settings ({config.finetune_steps} fine-tune steps, BN on "
          f"{config.calibration_batches} x 64 images, eval on {config.max_eval or len(data.val_y)}), {args.threads} thread(s): "
          f"median {statistics.median(costs):.2f} s, max {max(costs):.2f} s")
    record_result("estimate.cost", config_key(args), title=f"Seconds per accuracy estimate ({args.candidates} candidates "
                  f"over the MAC range, eval on {config.max_eval or len(data.val_y)} images, {args.threads} thread(s))",
                  figures={"median (s)": statistics.median(costs), "max (s)": max(costs)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
