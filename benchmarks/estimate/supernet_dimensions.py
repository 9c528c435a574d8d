"""Which elastic dimension a supernet serves badly: the largest network with one dimension changed.

Every variant keeps the largest network's choices except one kind (all kernels 3 or 5, all
expansions at their least, least depth, middle or least widths, keep ratio 0.75 or 0.5) and is
estimated like a search candidate (inherit, BatchNorm recalibration, held-out accuracy), fp32.
A supernet that serves its whole space scores each variant between its smallest and largest
network; one that learnt only the two networks trained every step scores the variants below both.

    python -m benchmarks.estimate.supernet_dimensions --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --supernet-steps 1200 --supernet-largest-steps 1200 --supernet-lr 0.02 \\
        --supernet-augment --random-subnets 1 [--supernet-sort-channels]
"""
from __future__ import annotations

import argparse


from autoc.arch.config import BlockOp
from autoc.evaluate.estimate import EstimateConfig, estimate_candidate
from autoc.evaluate.metrics import spec_macs
from autoc.space import load_space, parameter_plan
from autoc.space.assemble import assemble
from autoc.supernet import smallest_candidate
from autoc.supernet.subnets import extreme_choices, op_size

from benchmarks.common import add_common_args, config_key, load_data, record_result, trained_supernet


def _op_like(choices, *, kernel: int | None = None, least_expansion: bool = False):
    """The largest op of ``choices`` with that kernel / the least expansion (the largest if none)."""
    ops = [c for c in choices if not BlockOp.parse(str(c)).skip]
    if kernel is not None:
        ops = [c for c in ops if BlockOp.parse(str(c)).kernel == kernel] or ops
    if least_expansion:
        least = min(BlockOp.parse(str(c)).expansion for c in ops)
        ops = [c for c in ops if BlockOp.parse(str(c)).expansion == least]
    return max(ops, key=op_size)


def variants(space) -> dict[str, dict]:
    plan = parameter_plan(space)
    largest = extreme_choices(space, largest=True)

    def changed(kind, pick):
        return {**largest, **{p.name: pick(p.choices) for p in plan if p.kind == kind}}

    def nearest(value):
        return lambda choices: min(choices, key=lambda c: abs(c - value))

    return {
        "largest": largest,
        "kernel 5": changed("op", lambda c: _op_like(c, kernel=5)),
        "kernel 3": changed("op", lambda c: _op_like(c, kernel=3)),
        "least expansion": changed("op", lambda c: _op_like(c, least_expansion=True)),
        "least depth": changed("depth", min),
        "middle widths": changed("width", lambda c: sorted(c)[len(c) // 2]),
        "least widths": changed("width", min),
        "keep 0.75": changed("keep", nearest(0.75)),
        "keep 0.5": changed("keep", min),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--max-eval", type=int, default=1000)
    parser.add_argument("--calibration-batches", type=int, default=8)
    args = parser.parse_args()
    space = load_space(args.space)
    data = load_data(args, space)
    run, config = trained_supernet(args, space, data)
    print(f"supernet {run.path} ({config})")
    est = EstimateConfig(max_eval=args.max_eval, calibration_batches=args.calibration_batches, seed=args.seed)
    named = {name: assemble(space, values, num_classes=data.num_classes) for name, values in variants(space).items()}
    named["smallest"] = smallest_candidate(space, num_classes=data.num_classes)
    accuracies = {}
    for name, candidate in named.items():
        _, estimate = estimate_candidate(candidate, supernet=run.supernet, data=data, teacher_logits=None, config=est)
        print(f"  {name:16s} {spec_macs(candidate.netspec()) / 1e6:6.1f} MMACs  accuracy {estimate.accuracy:.3f}",
              flush=True)
        accuracies[f"{name} (estimated accuracy)"] = estimate.accuracy
    record_result("estimate.supernet_dimensions", config_key(args),
                  title="Which elastic dimension the supernet serves: the largest network with one dimension changed",
                  figures=accuracies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
