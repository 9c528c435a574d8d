"""Does an accuracy predictor learnt from the accumulated reference results rank new candidates?

Every candidate the reference recipe has trained (the reference cache, same data and recipe)
becomes one (architecture features, accuracy) example. A ridge regression on a few
architecture features (the regularisation chosen by inner cross-validation, features
standardised) is scored against what single features and MACs do:

- leave-one-out Kendall tau over all cached candidates, with a permutation p-value (the
  whole leave-one-out pipeline rerun on shuffled accuracies);
- repeated 5-fold cross-validation, tau within each test fold (leave-one-out ranks a
  predictor that shrinks to the training mean negatively, this does not);
- a learning curve: trained on N random references, scored on the rest — whether
  accumulating references (finalists, baselines, ranking runs) would make it rank;
- the ranking-fidelity benchmark's 20 candidates, predicted from the other references.

    python -m benchmarks.estimate.reference_predictor --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 900 --proper-augment
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from autoc.candidate import Candidate
from autoc.evaluate.metrics import spec_macs
from autoc.latency.validate import kendall_tau
from autoc.space import load_space

from benchmarks.common import (add_common_args, add_recipe_args, cached_references, candidate_key, config_key,
                               load_data, record_result, reference_cache, reference_recipe, spread_by_macs,
                               write_json)


ALPHAS = np.logspace(-2, 4, 25)
RESOLUTIONS = (32, 16, 8, 4)


def features(candidate: Candidate) -> dict[str, float]:
    """Size per feature-map resolution, depth, kernels, expansions, widths and compression of one candidate."""
    spec, policy = candidate.netspec(), candidate.policy
    convs = list(spec.convs())
    macs_at = {r: 0.0 for r in RESOLUTIONS}
    params, bits4 = 0, 0
    for conv, resolution in spec.conv_resolutions():
        weights = conv.cout * (conv.cin // conv.groups) * conv.kernel ** 2
        macs_at[resolution] += weights * resolution ** 2
        params += weights
        layer = policy.get(conv.name)
        bits4 += weights * (layer.quantized and layer.weight_bits <= 4)
    ops = [op for stage in candidate.arch.stages for op in stage.ops if not op.skip]
    early = [op for s, stage in enumerate(candidate.arch.stages) if s <= 2 for op in stage.ops if not op.skip]
    late = [op for s, stage in enumerate(candidate.arch.stages) if s > 2 for op in stage.ops if not op.skip]
    return {
        "log_macs": math.log(spec_macs(spec)),
        "log_params": math.log(params + spec.classifier_in * spec.num_classes),
        **{f"macs_r{r}": macs_at[r] / 1e6 for r in RESOLUTIONS},
        "depth": len(ops),
        "mean_kernel": float(np.mean([op.kernel for op in ops])),
        "expansion_early": float(np.mean([op.expansion for op in early])),
        "expansion_late": float(np.mean([op.expansion for op in late])),
        "stem_width": spec.stem.cout,
        "head_width": spec.head.cout if spec.head is not None else spec.classifier_in,
        "int8_share": float(np.mean([policy.get(conv.name).quantized for conv in convs])),
        "bits4_param_share": bits4 / params,
        "min_keep": min(policy.get(conv.name).keep_ratio for conv in convs),
    }


def predictor():
    return make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS))


def leave_one_out(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    everyone = np.arange(len(y))
    return np.array([predictor().fit(x[everyone != i], y[everyone != i]).predict(x[i : i + 1])[0] for i in everyone])


def fold_taus(x: np.ndarray, y: np.ndarray, *, repeats: int, rng: np.random.Generator) -> list[float]:
    """Kendall tau inside each test fold of repeated 5-fold cross-validation."""
    taus = []
    for _ in range(repeats):
        for fold in np.array_split(rng.permutation(len(y)), 5):
            train = np.setdiff1d(np.arange(len(y)), fold)
            taus.append(kendall_tau(list(predictor().fit(x[train], y[train]).predict(x[fold])), list(y[fold])))
    return taus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    add_recipe_args(parser, default_steps=900)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=20, help="repeats of the 5-fold split and of each learning-curve size")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/reference_predictor.json"))
    args = parser.parse_args()
    space = load_space(args.space)
    data = load_data(args, space)
    rows = cached_references(reference_cache(args), data_fingerprint=data.fingerprint,
                             recipe=dataclasses.asdict(reference_recipe(args)))
    if len(rows) < 20:
        print(f"only {len(rows)} cached references match this data and recipe; train more first (estimate.ranking_fidelity)")
        return 1
    table = [features(candidate) for candidate, _ in rows]
    names = list(table[0])
    x = np.array([[f[name] for name in names] for f in table])
    y = np.array([accuracy for _, accuracy in rows])
    n = len(y)
    rng = np.random.default_rng(args.seed)
    se = math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))
    print(f"{n} references (accuracy {y.min():.3f}-{y.max():.3f}, stdev {100 * y.std(ddof=1):.1f} points); "
          f"a {n}-candidate tau's standard error under no relation: {se:.3f}")
    single = {name: kendall_tau(list(x[:, i]), list(y)) for i, name in enumerate(names)}
    print("single features, Kendall tau: " + ", ".join(f"{k} {v:+.2f}" for k, v in single.items()))

    loo = kendall_tau(list(leave_one_out(x, y)), list(y))
    null = [kendall_tau(list(leave_one_out(x, shuffled)), list(shuffled))
            for shuffled in (rng.permutation(y) for _ in range(args.permutations))]
    p_value = (1 + sum(t >= loo for t in null)) / (1 + len(null))
    print(f"ridge, leave-one-out: tau {loo:+.3f} (shuffled accuracies: mean {np.mean(null):+.3f}, "
          f"95th percentile {np.percentile(null, 95):+.3f}; p = {p_value:.3f})")

    folds = fold_taus(x, y, repeats=args.repeats, rng=rng)
    print(f"ridge, repeated 5-fold, tau within a test fold: mean {np.mean(folds):+.3f} (stdev {np.std(folds):.3f}); "
          f"MACs alone {single['log_macs']:+.3f} over all")

    curve = {}
    for size in [s for s in (10, 20, 30, 40, n - 10) if s <= n - 10]:
        taus = []
        for _ in range(args.repeats):
            order = rng.permutation(n)
            train, test = order[:size], order[size:]
            taus.append(kendall_tau(list(predictor().fit(x[train], y[train]).predict(x[test])), list(y[test])))
        curve[size] = (float(np.mean(taus)), float(np.std(taus)))
        print(f"  trained on {size} references, tau on the other {n - size}: {curve[size][0]:+.3f} (stdev {curve[size][1]:.3f})")

    spread = {candidate_key(candidate) for candidate in spread_by_macs(space, 20, num_classes=data.num_classes, seed=0)}
    is_spread = np.array([candidate_key(candidate) in spread for candidate, _ in rows])
    spread_tau = None
    if is_spread.sum() == 20:
        predicted = predictor().fit(x[~is_spread], y[~is_spread]).predict(x[is_spread])
        spread_tau = kendall_tau(list(predicted), list(y[is_spread]))
        print(f"the ranking-fidelity benchmark's 20 candidates, predicted from the other {n - 20}: tau {spread_tau:+.3f} "
              f"(MACs {kendall_tau(list(x[is_spread, 0]), list(y[is_spread])):+.3f})")
    write_json(args.out, {"references": n, "features": names, "single": single, "leave_one_out_tau": loo,
                          "permutation_p": p_value, "fold_tau_mean": float(np.mean(folds)),
                          "learning_curve": {str(k): v for k, v in curve.items()}, "spread20_tau": spread_tau,
                          "settings": {k: str(v) for k, v in vars(args).items()}})
    record_result("estimate.reference_predictor", config_key(args),
                  title=f"Accuracy predictor learnt from {n} reference results (ridge regression on architecture features)",
                  figures={"leave-one-out Kendall tau": loo, "permutation p": p_value,
                           "within test folds, mean Kendall tau": float(np.mean(folds)),
                           "the ranking spread's 20 predicted from the others (tau)": spread_tau})
    return 0


if __name__ == "__main__":
    sys.exit(main())
