"""The reference trained with several seeds: how far two runs of it agree, and what the estimates rank against.

The ranking benchmark scores every estimate against one reference run per candidate (seed 0).
``estimate.reference_noise`` measured the seed noise on two candidates and simulated the ranking
ceiling from it; with every candidate of the spread trained at seeds 0 .. S-1 (``estimate.reference_noise
--pick 0 1 ... 19 --seeds S``) this prints the measured figures instead, from the cache only:

- the seed-to-seed stdev pooled over all candidates, and Kendall tau between each pair of seeds
  (what a second run of the reference itself scores; the simulated ceiling beside it);
- MACs, parameters and each estimate in ``--estimates`` (output files of ``estimate.ranking_fidelity``
  or ``estimate.proxy_ranking``) against seed 0 alone and against the mean of the seeds, which is a
  less noisy truth (its own seed noise is stdev / sqrt(S)).

    python -m benchmarks.estimate.reference_seeds --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 1800 --proper-augment --seeds 2 \\
        --estimates runs/benchmarks/rank1800_sn.json runs/benchmarks/proxy1800.json
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np

from autoc.candidate import Candidate
from autoc.evaluate.metrics import spec_macs
from autoc.evaluate.recipe import reference_accuracy
from autoc.latency.validate import kendall_tau
from autoc.space import load_space

from benchmarks.common import (add_common_args, add_recipe_args, candidate_key, config_key, expected_accuracies,
                               load_data, parameter_count, ranking_ceiling, record_result, reference_cache,
                               reference_recipe, spread_by_macs, write_json)


def estimates_from_file(path: Path) -> dict[str, dict[str, float]]:
    """{estimate name: {candidate key: value}} from an estimate.ranking_fidelity or estimate.proxy_ranking output."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read it as a benchmark output ({exc}); give an estimate.ranking_fidelity or "
                         "estimate.proxy_ranking --out file") from None
    if "rows" in saved:  # estimate.ranking_fidelity: one estimate per row
        values = {candidate_key(Candidate.from_dict(r["candidate"])): r["estimate"] for r in saved["rows"]}
        return {path.stem: values}
    if "scores" in saved and "candidates" in saved:  # estimate.proxy_ranking: several proxies over one list
        keys = [candidate_key(Candidate.from_dict(c)) for c in saved["candidates"]]
        return {f"{path.stem}:{name}": dict(zip(keys, scores)) for name, scores in saved["scores"].items()}
    raise SystemExit(f"{path}: neither an estimate.ranking_fidelity nor an estimate.proxy_ranking output (no 'rows', no 'scores')")


def perfect_estimator_tau(mean: np.ndarray, *, noise: float, seeds: int, reference_seeds: int,
                          draws: int = 2000) -> float:
    """Expected Kendall tau of each candidate's expected accuracy against the mean of ``reference_seeds``
    runs, the expected accuracies' spread inferred from ``mean`` (the mean of ``seeds`` runs, whose own
    noise is ``noise`` / sqrt(seeds)) and Gaussian seed noise of stdev ``noise`` per run."""
    truth = expected_accuracies(mean, noise=noise / seeds**0.5)
    rng = np.random.default_rng(0)
    run_noise = noise / reference_seeds**0.5
    return float(np.mean([kendall_tau(truth, truth + rng.normal(0, run_noise, len(truth))) for _ in range(draws)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    add_recipe_args(parser, default_steps=1800)
    parser.add_argument("--candidates", type=int, default=20, help="size of the ranking benchmark's spread")
    parser.add_argument("--seeds", type=int, default=2, help="recipe seeds 0 .. S-1 (cached results only)")
    parser.add_argument("--estimates", type=Path, nargs="*", default=[],
                        help="estimate.ranking_fidelity / estimate.proxy_ranking output files to score against the seeds")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/reference_seeds.json"))
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (seed-to-seed figures need two runs of the reference)")
    space = load_space(args.space)
    data = load_data(args, space)
    recipe = reference_recipe(args)
    spread = spread_by_macs(space, args.candidates, num_classes=data.num_classes, seed=args.seed)

    per_seed = []
    for seed in range(args.seeds):
        config = dataclasses.replace(recipe, seed=seed)
        results = [reference_accuracy(c, data, config=config, cache_dir=reference_cache(args), train_missing=False)
                   for c in spread]
        per_seed.append([None if r is None else r.accuracy for r in results])
    complete = [i for i in range(len(spread)) if all(s[i] is not None for s in per_seed)]
    if len(complete) < 3:
        raise SystemExit(f"only {len(complete)} of the {len(spread)} candidates have all {args.seeds} seeds cached; "
                         f"train them first: python -m benchmarks.estimate.reference_noise ... --pick 0 .. "
                         f"{len(spread) - 1} --seeds {args.seeds}")
    runs = np.array([[s[i] for i in complete] for s in per_seed])  # seeds x candidates
    mean = runs.mean(axis=0)
    for i, column in zip(complete, runs.T):
        print(f"candidate {i:2d} ({spec_macs(spread[i].netspec()) / 1e6:5.1f} MMACs): "
              + " / ".join(f"{a:.4f}" for a in column) + f"  mean {column.mean():.4f}")
    pooled = float(np.sqrt(runs.var(axis=0, ddof=1).mean()))
    print(f"{len(complete)} candidates with {args.seeds} seeds; seed-to-seed stdev pooled over them "
          f"{100 * pooled:.2f} points; spread of seed 0 {100 * runs[0].std():.2f} points, of the mean "
          f"{100 * mean.std():.2f}")
    pairs = {f"{a}-{b}": kendall_tau(runs[a], runs[b]) for a, b in itertools.combinations(range(args.seeds), 2)}
    simulated = ranking_ceiling(list(runs[0]), noise=pooled)
    print("measured Kendall tau between two runs of the reference: "
          + ", ".join(f"seeds {k}: {v:+.3f}" for k, v in pairs.items())
          + f" (simulated from the pooled stdev: {simulated['two_runs']:.3f}; a perfect estimator vs one run: "
            f"{simulated['perfect']:.3f})")

    ceilings = {k: perfect_estimator_tau(mean, noise=pooled, seeds=args.seeds, reference_seeds=k) for k in (1, 2, 4, 8)}
    print("a perfect estimator (each candidate's expected accuracy) against the mean of k reference seeds, simulated "
          "from the seeds' mean and the pooled stdev: " + ", ".join(f"k = {k}: {t:.3f}" for k, t in ceilings.items()))

    names: dict[str, dict[str, float]] = {
        "macs": {candidate_key(c): float(spec_macs(c.netspec())) for c in spread},
        "params": {candidate_key(c): float(parameter_count(c)) for c in spread}}
    for path in args.estimates:
        names.update(estimates_from_file(path))
    scored = {}
    for name, values in names.items():
        have = [j for j, i in enumerate(complete) if candidate_key(spread[i]) in values]
        if len(have) < 3:
            print(f"{name}: {len(have)} of the candidates, not scored")
            continue
        estimate = [values[candidate_key(spread[complete[j]])] for j in have]
        scored[name] = {"candidates": len(have),
                        "vs_seed0": kendall_tau(estimate, runs[0][have]),
                        "vs_mean": kendall_tau(estimate, mean[have]),
                        "vs_each_seed": [kendall_tau(estimate, run[have]) for run in runs]}
        print(f"{name}: Kendall tau over {len(have)} vs seed 0 {scored[name]['vs_seed0']:+.3f}, vs the mean of "
              f"{args.seeds} seeds {scored[name]['vs_mean']:+.3f} (each seed: "
              + " / ".join(f"{t:+.3f}" for t in scored[name]["vs_each_seed"]) + ")")
    write_json(args.out, {"candidates": complete, "accuracies": runs.tolist(), "pooled_stdev": pooled,
                          "seed_pairs_tau": pairs, "simulated_ceiling": simulated, "estimates": scored,
                          "perfect_vs_mean_of_k_seeds": ceilings,
                          "settings": {k: str(v) for k, v in vars(args).items()}})
    figures = {"pooled seed-to-seed stdev (points)": 100 * pooled,
               "two reference runs vs each other, simulated (tau)": simulated["two_runs"]}
    figures |= {f"perfect estimator vs the mean of {k} seeds (tau)": t for k, t in ceilings.items()}
    figures |= {f"{name} vs the mean of the seeds (tau)": s["vs_mean"] for name, s in scored.items()}
    record_result("estimate.reference_seeds", config_key(args),
                  title=f"The reference at {args.seeds} seeds over {len(complete)} candidates, and the estimates against it",
                  figures=figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
