"""Ranking fidelity of the supernet estimate, and its cost per candidate.

For ``--candidates`` candidates of the space spread over its MAC range (a latency proxy that
needs no device measurement), compare the short estimate (inherit from the supernet, compress,
calibrate BatchNorm, ``--finetune-steps`` KD steps, evaluate on ``--max-eval`` held-out images)
with training each candidate from scratch by one recipe (``--proper-steps`` SGD steps, batch 32,
lr 0.05 cosine, evaluated on the whole held-out split). Prints Kendall tau and the seconds.

    python -m benchmarks.estimate.ranking_fidelity --data ../shared/data/cifar10-jpeg.zip

On a machine with idle cores, split the candidates over processes (each trains or loads the
same cached supernet) and merge their rows:

    python -m benchmarks.estimate.ranking_fidelity ... --shard 0/2 --out a.json &
    python -m benchmarks.estimate.ranking_fidelity ... --shard 1/2 --out b.json
    python -m benchmarks.estimate.ranking_fidelity --merge a.json b.json

``--rescore a.json b.json --max-eval N`` re-runs only the estimates of those rows' candidates
(e.g. on more held-out images) against the proper accuracies already measured.

``--early-steps N`` replaces the supernet estimate by a trainability proxy: each candidate
trained from scratch for the first N steps of the reference recipe's own schedule (the
reference run's model at step N), scored on the held-out split; no supernet is needed.

Proper accuracies are cached under ``<runs-dir>/cache/reference`` by (candidate, recipe, data),
so a run cut short, a run with another supernet or estimate setting, and other benchmarks
using the same recipe reuse them; ``--reference-only`` trains just those (no supernet needed),
e.g. on a spare core while the supernet trains on another.
"""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict
from pathlib import Path


from autoc.candidate import Candidate
from autoc.evaluate.estimate import EstimateConfig, estimate_candidate
from autoc.evaluate.metrics import spec_macs
from autoc.evaluate.recipe import reference_accuracy, train_from_scratch
from autoc.training.loop import teacher_logits_of
from autoc.latency.validate import kendall_tau
from autoc.space import load_space

from benchmarks.common import (add_common_args, add_recipe_args, config_key, interleaved, load_data, parse_shard,
                               record_result, reference_cache, reference_recipe, spread_by_macs, train_device,
                               trained_supernet, write_json)


def print_figures(rows: list[dict], *, proper_steps: int | None, threads: int | None) -> dict:
    proper = [r["proper"] for r in rows]
    tau = kendall_tau([r["estimate"] for r in rows], proper)
    macs_tau = kendall_tau([r["macs"] for r in rows], proper)  # the free predictor the estimate must beat
    seconds = [r["estimate_seconds"] for r in rows]
    summary = {"kendall_tau": tau, "macs_kendall_tau": macs_tau, "candidates": len(rows),
               "proper_range": [min(proper), max(proper)],
               "estimate_seconds_median": statistics.median(seconds), "estimate_seconds_max": max(seconds)}
    versus = f"{proper_steps}-step training" if proper_steps else "proper training"
    print(f"Kendall tau (estimate vs {versus}) over {len(rows)} candidates: {tau:.3f} "
          f"(MACs alone: {macs_tau:.3f}; proper accuracies {min(proper):.3f}-{max(proper):.3f})")
    print(f"estimate cost per candidate: median {summary['estimate_seconds_median']:.2f} s, "
          f"max {summary['estimate_seconds_max']:.2f} s" + (f" ({threads} thread(s))" if threads else ""))
    return summary


def record(args, summary: dict, *, estimate: str) -> None:
    """The figures of a whole spread (a shard's are recorded once merged)."""
    record_result("estimate.ranking_fidelity", config_key(args, extra=estimate),
                  title=f"Ranking fidelity: {estimate} vs the reference recipe over {summary['candidates']} candidates",
                  figures={"Kendall tau": summary["kendall_tau"], "Kendall tau of MACs alone": summary["macs_kendall_tau"],
                           "estimate cost, median (s)": summary["estimate_seconds_median"],
                           "estimate cost, max (s)": summary["estimate_seconds_max"]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--candidates", type=int, default=20)
    add_recipe_args(parser, default_steps=60)
    parser.add_argument("--cached-references-only", action="store_true",
                        help="score only the candidates whose reference accuracy is already cached")
    parser.add_argument("--reference-only", action="store_true",
                        help="train (or find cached) the candidates' reference accuracies and stop")
    parser.add_argument("--finetune-steps", type=int, default=EstimateConfig().finetune_steps)
    parser.add_argument("--max-eval", type=int, default=EstimateConfig().max_eval)
    parser.add_argument("--calibration-batches", type=int, default=EstimateConfig().calibration_batches,
                        help="BatchNorm recalibration batches of 64 training images")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/ranking_fidelity.json"))
    parser.add_argument("--shard", default="0/1", help="K/N: this process scores every N-th candidate from the K-th")
    parser.add_argument("--merge", type=Path, nargs="+", help="print the figures of shards' output files and stop")
    parser.add_argument("--rescore", type=Path, nargs="+", help="re-estimate the candidates of these output files")
    parser.add_argument("--early-steps", type=int, default=None,
                        help="estimate = accuracy after the first N steps of the reference schedule (no supernet)")
    args = parser.parse_args()
    if args.merge:
        rows = [row for path in args.merge for row in json.loads(path.read_text())["rows"]]
        record(args, print_figures(rows, proper_steps=None, threads=None), estimate="merged shards")
        return 0
    shard, shards = parse_shard(args.shard)

    space = load_space(args.space)
    data = load_data(args, space)
    recipe, cache = reference_recipe(args), reference_cache(args)
    spread = spread_by_macs(space, args.candidates, num_classes=data.num_classes, seed=args.seed)
    if args.reference_only:
        for i in interleaved(len(spread))[shard::shards]:
            proper = reference_accuracy(spread[i], data, config=recipe, cache_dir=cache, device=train_device(args))
            print(f"{i:>3} MMACs {spec_macs(spread[i].netspec()) / 1e6:6.1f}  proper {proper.accuracy:.3f} "
                  f"({proper.seconds:.0f} s{', cached' if proper.cached else ''})", flush=True)
        return 0
    if args.early_steps is not None:
        return early_training_ranking(args, spread, data, recipe=recipe, cache=cache, shard=shard, shards=shards)
    run, sn_config = trained_supernet(args, space, data)
    print(f"supernet: {'trained' if run.trained_now else 'cached'} {run.path} "
          f"({run.train_seconds:.0f} s, {sn_config})", flush=True)
    supernet = run.supernet
    est_config = EstimateConfig(finetune_steps=args.finetune_steps, max_eval=args.max_eval, seed=args.seed,
                                calibration_batches=args.calibration_batches)
    teacher_logits = None
    if args.finetune_steps > 0:
        teacher_logits = teacher_logits_of([supernet.largest(calibration=data.train_x)], data.train_x)

    if args.rescore:
        rows = [row for path in args.rescore for row in json.loads(path.read_text())["rows"]]
        for row in rows:
            _, estimate = estimate_candidate(Candidate.from_dict(row["candidate"]), supernet=supernet, data=data,
                                             teacher_logits=teacher_logits, config=est_config)
            row |= {"estimate": estimate.accuracy, "estimate_seconds": estimate.seconds}
            print(f"MMACs {row['macs'] / 1e6:6.1f}  estimate {estimate.accuracy:.3f} ({estimate.seconds:.1f} s)  "
                  f"proper {row['proper']:.3f}", flush=True)
        print(f"estimates with BN on {args.calibration_batches} x 64 images, evaluated on {args.max_eval or 'all'} "
              "held-out images:")
        record(args, print_figures(rows, proper_steps=None, threads=args.threads), estimate="rescored estimate")
        return 0

    def supernet_estimate(candidate):
        _, estimate = estimate_candidate(candidate, supernet=supernet, data=data, teacher_logits=teacher_logits,
                                         config=est_config)
        return estimate.accuracy, estimate.seconds

    rows = scored_rows(args, spread, data, recipe=recipe, cache=cache, shard=shard, shards=shards,
                       estimate=supernet_estimate, label="estimate")
    summary = print_figures(rows, proper_steps=args.proper_steps, threads=args.threads)
    if shards == 1:
        record(args, summary, estimate="supernet estimate")
    summary |= {
        "supernet_train_seconds": run.train_seconds,
        "settings": {**{k: str(v) for k, v in vars(args).items()}, "supernet": asdict(sn_config),
                     "estimate": asdict(est_config), "recipe": asdict(recipe)},
    }
    write_json(args.out, {**summary, "rows": rows})
    return 0


def scored_rows(args, spread, data, *, recipe, cache, shard: int, shards: int, estimate, label: str) -> list[dict]:
    """Per candidate of this shard with a reference result: ``estimate(candidate)`` -> (accuracy, seconds)
    beside its reference accuracy; the rows so far are written after each candidate."""
    rows = []
    for i in interleaved(len(spread))[shard::shards]:
        candidate = spread[i]
        proper = reference_accuracy(candidate, data, config=recipe, cache_dir=cache,
                                    train_missing=not args.cached_references_only, device=train_device(args))
        if proper is None:
            continue
        accuracy, seconds = estimate(candidate)
        rows.append({"macs": spec_macs(candidate.netspec()), "estimate": accuracy, "estimate_seconds": seconds,
                     "proper": proper.accuracy, "proper_seconds": proper.seconds, "candidate": candidate.to_dict()})
        write_json(args.out, {"rows": rows, "complete": False})  # a run cut short keeps its rows
        print(f"{i:>3} MMACs {rows[-1]['macs'] / 1e6:6.1f}  {label} {accuracy:.3f} ({seconds:.1f} s)  "
              f"proper {proper.accuracy:.3f} ({proper.seconds:.0f} s)", flush=True)
    return rows


def early_training_ranking(args, spread, data, *, recipe, cache, shard: int, shards: int) -> int:
    """Ranking fidelity of the accuracy after the first ``--early-steps`` steps of the reference run."""
    def early(candidate):
        trained = train_from_scratch(candidate, data, config=recipe, stop_after=args.early_steps,
                                     device=train_device(args))
        return trained.accuracy, trained.seconds

    rows = scored_rows(args, spread, data, recipe=recipe, cache=cache, shard=shard, shards=shards,
                       estimate=early, label=f"after {args.early_steps} steps")
    summary = print_figures(rows, proper_steps=args.proper_steps, threads=args.threads)
    if shards == 1:
        record(args, summary, estimate=f"accuracy after {args.early_steps} steps")
    summary |= {"settings": {**{k: str(v) for k, v in vars(args).items()}, "recipe": asdict(recipe)}}
    write_json(args.out, {**summary, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
