"""How steady is the search's accuracy estimate over training seeds, against the differences it ranks?

For ``--candidates`` networks spread over the MAC range of the space, the estimate exactly as
`autoc search` computes it (``autoc.search.objective.estimate_candidate_in``: weights from the
teacher or supernet, compression, KD fine-tune, validation accuracy) is repeated for
``--seeds`` training seeds (teacher or supernet seed and fine-tuning seed; the data split is
fixed by ``--seed``). Prints and writes (JSON, with machine and date):

- per-candidate spread: the standard deviation of one candidate's estimate over the seeds
  (mean and max over candidates), in accuracy points;
- between-candidate spread: the standard deviation of the candidates' mean estimates;
- seed-to-seed Kendall tau: between two seeds' estimates of the candidates (mean and min over
  all pairs of seeds);
- seconds per candidate (the estimate alone), and per seed the teacher/supernet's training time.

    python -m benchmarks.estimate.seeds --dataset digits
    python -m benchmarks.estimate.seeds --dataset cifar10 --data ../shared/data/cifar10-jpeg.zip --max-train 5000
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

from autoc.latency.validate import kendall_tau
from autoc.search.context import build_objective_context, load_inputs
from autoc.search.objective import estimate_candidate_in
from autoc.search.options import SearchOptions, StorageOptions, WorkerOptions
from autoc.supernet import SupernetConfig

from benchmarks.common import RESULTS, record_result, spread_by_macs


# What the figures mean, shown under them on the results page.
NOTE = ("The search's own estimate of candidates spread over the space's MAC range, repeated for each training "
        'seed (teacher or supernet, and fine-tuning; same data and validation images). Per-candidate spread: '
        "standard deviation of one candidate's estimate over the seeds (mean and worst over the candidates). "
        'Between candidates: standard deviation of their mean estimates. Seed-to-seed tau: Kendall tau between two'
        " seeds' estimates of the candidates (mean and worst over the seed pairs).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = SearchOptions(budget_ms=1.0)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data", default=None, help="data directory or archive (cifar10, imagefolder)")
    parser.add_argument("--space", default="mbv2-cifar")  # the space its recorded figures were measured on
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--max-val", type=int, default=None)
    parser.add_argument("--teacher-steps", type=int, default=defaults.teacher_steps)
    parser.add_argument("--finetune-steps", type=int, default=defaults.finetune_steps)
    parser.add_argument("--supernet-steps", type=int, default=0, help="0: no supernet")
    parser.add_argument("--seeds", type=int, default=5, help="training seeds 0..N-1")
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="data split and candidate draw")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--label", default="", help="name of the recipe in the output (e.g. today, new)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the result record is written")
    args = parser.parse_args()

    options = SearchOptions(budget_ms=1.0, space=args.space, device="host", dataset=args.dataset, data_dir=args.data,
                            max_train=args.max_train, max_val=args.max_val, teacher_steps=args.teacher_steps,
                            finetune_steps=args.finetune_steps, seed=args.seed, progress=False,
                            supernet=SupernetConfig(steps=args.supernet_steps) if args.supernet_steps else None,
                            storage=StorageOptions(runs_dir=args.runs_dir, study="estimate-seeds"),
                            workers=WorkerOptions(cpus=args.threads))
    inputs = load_inputs(options)
    candidates = spread_by_macs(inputs.space, args.candidates, num_classes=inputs.data.num_classes, seed=args.seed)
    estimates: list[list[float]] = []  # [seed][candidate]
    seconds: list[float] = []
    contexts = []
    for seed in range(args.seeds):
        start = time.perf_counter()
        ctx = build_objective_context(options, inputs=inputs, threads=args.threads, training_seed=seed)
        contexts.append({"seed": seed, "teacher_accuracy": ctx.teacher_accuracy,
                         "seconds": time.perf_counter() - start})
        row = []
        for n, candidate in enumerate(candidates):
            _, estimate = estimate_candidate_in(ctx, candidate, seed=seed + n)
            row.append(estimate.accuracy)
            seconds.append(estimate.seconds)
        estimates.append(row)
        print(f"seed {seed}: teacher {ctx.teacher_accuracy:.4f} ({contexts[-1]['seconds']:.0f} s); estimates "
              + " ".join(f"{a:.3f}" for a in row), flush=True)
        if 1 < len(estimates) < args.seeds:  # a run cut short keeps the seeds it finished
            write_result(args, options=options, inputs=inputs, candidates=candidates, estimates=estimates,
                         seconds=seconds, contexts=contexts, final=False)

    write_result(args, options=options, inputs=inputs, candidates=candidates, estimates=estimates, seconds=seconds,
                 contexts=contexts, final=True)
    return 0


def write_result(args, *, options, inputs, candidates, estimates, seconds, contexts, final: bool,
                 recipe: str | None = None, benchmark: str = "estimate.seeds", note: str = NOTE) -> None:
    """Summarise the seeds done so far, print it (when ``final``) and write the JSON result
    (``recipe``: how the estimate was made, in the title; by default read off ``options``)."""
    seeds = len(estimates)
    per_candidate = [statistics.stdev(col) * 100 for col in zip(*estimates)]
    means = [statistics.mean(col) for col in zip(*estimates)]
    taus = [kendall_tau(estimates[a], estimates[b]) for a, b in itertools.combinations(range(seeds), 2)]
    summary = {
        "seeds": seeds,
        "per_candidate_stdev_points_mean": statistics.mean(per_candidate),
        "per_candidate_stdev_points_max": max(per_candidate),
        "between_candidate_stdev_points": statistics.stdev(means) * 100,
        "seed_tau_mean": statistics.mean(taus),
        "seed_tau_min": min(taus),
        "seconds_per_candidate": statistics.mean(seconds),
    }
    if final:
        print(f"{args.label or 'recipe'} on {inputs.data.name}: per-candidate spread "
              f"{summary['per_candidate_stdev_points_mean']:.2f} points (max {summary['per_candidate_stdev_points_max']:.2f}), "
              f"between candidates {summary['between_candidate_stdev_points']:.2f}; seed-to-seed tau "
              f"{summary['seed_tau_mean']:.3f} (min {summary['seed_tau_min']:.3f}); "
              f"{summary['seconds_per_candidate']:.2f} s per candidate")
    recipe = recipe or ((f"supernet {options.supernet.steps} steps" if options.supernet is not None
                         else f"teacher {options.teacher_steps} steps") + f", {options.finetune_steps} KD steps")
    record_result(
        benchmark, f"{args.dataset}{'-' + args.label if args.label else ''}",
        title=f"How steady is the accuracy estimate? {inputs.data.name} ({len(inputs.data.train_y)} train / "
              f"{len(inputs.data.val_y)} val), {recipe}, {seeds} training seeds",
        figures={"per-candidate spread, mean (points)": summary["per_candidate_stdev_points_mean"],
                 "per-candidate spread, worst (points)": summary["per_candidate_stdev_points_max"],
                 "between candidates (points)": summary["between_candidate_stdev_points"],
                 "seed-to-seed Kendall tau, mean": summary["seed_tau_mean"],
                 "seed-to-seed Kendall tau, worst": summary["seed_tau_min"],
                 "seconds per candidate": summary["seconds_per_candidate"]},
        goal="per-candidate spread <= 2 points and seed-to-seed tau >= 0.8 at <= 3 s per candidate (issue 30)",
        note=note, results_dir=args.results_dir, complete=final, label=args.label,
        options={**{k: str(v) for k, v in vars(options).items()},
                 "supernet_steps": str(options.supernet.steps if options.supernet else 0)}, dataset=inputs.data.name,
        train_images=len(inputs.data.train_y), val_images=len(inputs.data.val_y), summary=summary,
        contexts=contexts, estimates=estimates, candidates=[c.to_dict() for c in candidates])


if __name__ == "__main__":
    sys.exit(main())
