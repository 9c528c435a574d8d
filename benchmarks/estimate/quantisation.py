"""Is the supernet estimate held back by post-training quantisation of the inherited weights?

The supernet trains in fp32; a candidate's estimate inherits those weights and attaches its
policy's fake quantisers (down to 4-bit weights) without quantisation-aware training, while the
reference recipe trains every candidate with its quantisers from the first step. If the
estimate's damage from 4- and 6-bit weights were large it would rank by bit-width rather than
by architecture. Over every network the reference recipe has trained (the reference cache), each
is estimated three ways: with its policy, with weights of fewer than 8 bits raised to 8 ("w8"),
and with all quantisation dropped ("fp32", keep ratios kept); Kendall tau of each against the
mean of the network's recipe seeds, and of the policy-vs-fp32 drop against the share of layers
with fewer than 8-bit weights.

    python -m benchmarks.estimate.quantisation --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 1800 --proper-augment --supernet-steps 1200 --supernet-largest-steps 1200 \\
        --supernet-lr 0.02 --supernet-augment --random-subnets 1
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path


from autoc.candidate import Candidate
from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.evaluate.estimate import estimate_candidate
from autoc.latency.validate import kendall_tau
from autoc.space import load_space

from benchmarks.common import (add_common_args, add_max_eval_arg, add_recipe_args, add_trained_networks_args,
                               config_key, estimate_config, load_data, record_result, trained_networks,
                               trained_supernet, write_json)


VARIANTS = ("policy", "w8", "fp32")


def variant(candidate: Candidate, how: str) -> Candidate:
    """``candidate`` as it is ("policy"), with sub-8-bit weights raised to 8 ("w8"), or unquantised ("fp32")."""
    layers = {}
    for name, layer in candidate.policy.layers:
        if how == "fp32":
            layers[name] = LayerPolicy(keep_ratio=layer.keep_ratio, sparsity=layer.sparsity)
        elif how == "w8" and layer.precision == "int8":
            layers[name] = dataclasses.replace(layer, weight_bits=max(layer.weight_bits, 8))
        else:
            layers[name] = layer
    return dataclasses.replace(candidate, policy=CompressionPolicy.from_mapping(layers))


def low_bit_share(candidate: Candidate) -> float:
    layers = [layer for _, layer in candidate.policy.layers]
    return sum(layer.precision == "int8" and layer.weight_bits < 8 for layer in layers) / len(layers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=1800)
    add_max_eval_arg(parser)
    add_trained_networks_args(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/estimate_quantisation.json"))
    args = parser.parse_args()
    space = load_space(args.space)
    data = load_data(args, space)
    networks = trained_networks(args, space, data)
    run, _ = trained_supernet(args, space, data)
    config = estimate_config(args)
    rows = []
    for network in networks:
        row = {"spread": network.in_spread, "acc": network.accuracy, "mean": network.mean_accuracy,
               "low_bits": low_bit_share(network.candidate)}
        for how in VARIANTS:
            row[how] = estimate_candidate(variant(network.candidate, how), supernet=run.supernet, data=data,
                                          teacher_logits=None, config=config)[1].accuracy
        rows.append(row)
        print(json.dumps(row), flush=True)
    figures = {}
    for group, members in (("spread", [r for r in rows if r["spread"]]),
                           ("others", [r for r in rows if not r["spread"]]), ("all", rows)):
        if len(members) < 4:
            continue
        truth = [r["mean"] for r in members]
        figures[group] = {
            "networks": len(members),
            "tau_vs_mean": {how: kendall_tau([r[how] for r in members], truth) for how in VARIANTS},
            "drop_vs_low_bit_share_tau": kendall_tau([r["policy"] - r["fp32"] for r in members],
                                                     [r["low_bits"] for r in members]),
            "mean_estimate": {how: statistics.mean(r[how] for r in members) for how in VARIANTS}}
        f = figures[group]
        print(f"{group}: {f['networks']} networks; Kendall tau vs the mean of seeds: "
              + ", ".join(f"{how} {tau:+.3f}" for how, tau in f["tau_vs_mean"].items())
              + f"; policy-minus-fp32 drop vs the sub-8-bit share {f['drop_vs_low_bit_share_tau']:+.3f}; mean estimate "
              + ", ".join(f"{how} {m:.3f}" for how, m in f["mean_estimate"].items()), flush=True)
    write_json(args.out, {"figures": figures, "rows": rows, "settings": {k: str(v) for k, v in vars(args).items()}})
    record_result("estimate.quantisation", config_key(args),
                  title="The estimate with its policy, sub-8-bit weights raised to 8 bits, and quantisation dropped",
                  figures={f"{group} ({f['networks']}): {how} {what}": value for group, f in figures.items()
                           for what, values in (("tau vs the mean of seeds", f["tau_vs_mean"]),
                                                ("mean estimate", f["mean_estimate"]))
                           for how, value in values.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
