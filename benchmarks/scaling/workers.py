"""Trials per hour with 1 vs 2 search workers, and what Ray adds per trial.

Two tiny but real searches of the same length (same space, data, settings; fresh studies,
warm caches) run one after the other: one worker in this process, then two Ray workers on a
local instance. Trials per hour come from the trials' stored start/end times (the trial
phase), and also from the wall time of the whole command. Ray's own cost is measured
apart: starting a local instance, an empty task's round trip, and building the objective
context in a fresh Ray worker, spread over the trials of one worker.

    python -m benchmarks.scaling.workers --trials 8
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

from autoc.search.context import build_objective_context
from autoc.search.driver import SearchOptions, run_search
from autoc.search.options import StorageOptions, WorkerOptions
from autoc.search.storage import default_storage_url, open_storage

from benchmarks.common import record_result


def trial_phase_hours(options: SearchOptions) -> tuple[int, float]:
    study = optuna.load_study(study_name=options.storage.study, storage=open_storage(default_storage_url(options.run_directory())))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    span = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    return len(done), span.total_seconds() / 3600


def timed_search(options: SearchOptions) -> dict[str, float]:
    start = time.perf_counter()
    run_search(options)
    wall_h = (time.perf_counter() - start) / 3600
    trials, phase_h = trial_phase_hours(options)
    return {"trials": trials, "wall_s": wall_h * 3600, "per_hour_phase": trials / phase_h, "per_hour_wall": trials / wall_h}


def ray_costs(options: SearchOptions, *, round_trips: int) -> dict[str, float]:
    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    init_s = time.perf_counter() - start
    try:
        noop = ray.remote(lambda: None).options(num_cpus=1)
        ray.get(noop.remote())  # first call starts a worker process
        rtt = []
        for _ in range(round_trips):
            t = time.perf_counter()
            ray.get(noop.remote())
            rtt.append(time.perf_counter() - t)

        def context_seconds(opts: SearchOptions) -> float:
            t = time.perf_counter()
            build_objective_context(opts)
            return time.perf_counter() - t

        t = time.perf_counter()
        in_task = ray.get(ray.remote(context_seconds).options(num_cpus=1).remote(options))
        task_total = time.perf_counter() - t
    finally:
        ray.shutdown()
    return {"init_s": init_s, "rtt_ms": 1000 * statistics.median(rtt), "context_in_task_s": in_task,
            "task_with_context_s": task_total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--space", default="mbv2-cifar")
    parser.add_argument("--finetune-steps", type=int, default=10)
    parser.add_argument("--cpus-per-worker", type=int, default=1, help="torch threads per worker (1: the same per-trial work)")
    parser.add_argument("--runs-dir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()
    runs = args.runs_dir or Path(tempfile.mkdtemp(prefix="autoc-scaling-")) / "runs"
    base = SearchOptions(
        budget_ms=1000.0, space=args.space, device="host", storage=StorageOptions(runs_dir=runs.resolve()), trials=args.trials,
        finetune_steps=args.finetune_steps, teacher_steps=20, max_train=300, max_val=150, progress=False, sampler="random",
        workers=WorkerOptions(cpus=args.cpus_per_worker),
    )

    def study(name: str, workers: int = 1) -> SearchOptions:
        return replace(base, storage=replace(base.storage, study=name), workers=replace(base.workers, count=workers))

    t = time.perf_counter()
    build_objective_context(study("warm"), progress=False)  # host profile + teacher, cached
    context_first_s = time.perf_counter() - t
    t = time.perf_counter()
    build_objective_context(study("warm"))
    context_cached_s = time.perf_counter() - t

    one = timed_search(study("w1"))
    two = timed_search(study("w2", workers=2))
    ray = ray_costs(study("w2"), round_trips=20)

    print(f"objective context: first build {context_first_s:.1f} s (calibration + teacher), from caches {context_cached_s:.2f} s")
    print(f"{'workers':>7}  {'trials':>6}  {'wall_s':>7}  {'trials/h (trial phase)':>22}  {'trials/h (wall)':>15}")
    for n, r in ((1, one), (2, two)):
        print(f"{n:>7}  {r['trials']:>6}  {r['wall_s']:>7.1f}  {r['per_hour_phase']:>22.0f}  {r['per_hour_wall']:>15.0f}")
    print(f"ratio 2 vs 1 workers: {two['per_hour_phase'] / one['per_hour_phase']:.2f} (trial phase), "
          f"{two['per_hour_wall'] / one['per_hour_wall']:.2f} (wall)")
    per_trial_s = (ray["init_s"] + ray["task_with_context_s"]) / (args.trials / 2)
    print(f"ray: local instance start {ray['init_s']:.1f} s, empty task round trip {ray['rtt_ms']:.1f} ms, "
          f"worker context in a Ray task {ray['context_in_task_s']:.1f} s (task incl. start {ray['task_with_context_s']:.1f} s, "
          f"in-process from caches {context_cached_s:.2f} s)")
    print(f"ray overhead per trial at {args.trials} trials, 2 workers: {per_trial_s:.2f} s "
          f"(start + one worker's set-up, over its {args.trials // 2} trials) + {ray['rtt_ms']:.1f} ms dispatch")
    figures = {f"{n} worker(s): {what}": r[key] for n, r in ((1, one), (2, two))
               for what, key in (("wall (s)", "wall_s"), ("trials/h, trial phase", "per_hour_phase"),
                                 ("trials/h, wall", "per_hour_wall"))}
    figures |= {"2 vs 1 workers, trial phase (x)": two["per_hour_phase"] / one["per_hour_phase"],
                "2 vs 1 workers, wall (x)": two["per_hour_wall"] / one["per_hour_wall"],
                "Ray local instance start (s)": ray["init_s"], "Ray empty task round trip (ms)": ray["rtt_ms"]}
    record_result("scaling.workers", f"{args.space}-trials{args.trials}-finetune{args.finetune_steps}",
                  title=f"Distributed search: {args.trials} trials of {args.space} on 1 and 2 workers", figures=figures)


if __name__ == "__main__":
    main()
