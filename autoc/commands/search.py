"""`autoc search`: architecture + compression policy search under a latency budget."""
from __future__ import annotations

import argparse
from pathlib import Path

from autoc.commands._numbers import amount, count

# Options flags default to None so that, with --resume, a flag the user gave can be told from one
# left out (which then comes from the stored study); otherwise SearchOptions supplies the default.


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search architecture + compression policy under a latency budget")
    p.add_argument("--budget-ms", type=amount("20"), default=None, help="latency budget per inference on the device, in ms (required unless --resume)")
    p.add_argument("--budget-mj", type=amount("0.5"), default=None, help="energy budget per inference in mJ, estimated "
                   "from the device profile's energy model (autoc latency predict shows it); optional")
    p.add_argument("--space", default=None, help="search space name (search_spaces/NAME.yaml) or YAML path [mbv2-cifar]")
    p.add_argument("--dataset", default=None, help="digits (bundled), cifar10 or imagefolder [digits]")
    p.add_argument("--data-dir", default=None, help="dataset location for cifar10 / imagefolder")
    p.add_argument("--device", default=None, help="device profile: host, or a calibrated profile name [host]")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite in runs/<study>/study.db); "
                   "postgresql://user@host:5432/db for several machines")
    p.add_argument("--study", default=None, help="study name; an existing one is resumed")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue the study in RUN_DIR (runs/<study>) with its stored options; flags given override")
    p.add_argument("--trials", type=count(1, 30), default=None, help="total trials of the study, counted across resumes [30]")
    p.add_argument("--timeout", type=amount("3600"), default=None, help="stop starting trials after this many seconds")
    p.add_argument("--seed", type=count(0, 0), default=None, help="[0]")
    p.add_argument("--sampler", default=None, help="tpe, nsga2, gp, ehvi or random [tpe]")
    p.add_argument("--spread-start", action="store_true", default=None, help="TPE / NSGA-II start from candidates "
                   "spread over the predicted-latency range within the budget, not from random ones")
    p.add_argument("--runs-dir", type=Path, default=None, help="where studies, caches and profiles live [runs]")
    p.add_argument("--finetune-steps", type=count(0, 20), default=None, help="KD fine-tuning steps per candidate [20]")
    p.add_argument("--teacher-steps", type=count(1, 120), default=None, help="training steps of the largest network [120]")
    p.add_argument("--supernet-steps", type=count(0, 600), default=None, help="train (or load from runs/cache) a weight-sharing "
                   "supernet for this many sandwich-rule steps and let candidates inherit from it; 0 inherits from "
                   "the briefly trained largest network [0]")
    p.add_argument("--supernet-largest-steps", type=count(0, 100), default=None, help="supernet recipe, as `autoc supernet "
                   "train --largest-steps`: train the largest network alone this many steps first [0]")
    p.add_argument("--supernet-lr", type=amount("0.05"), default=None, help="supernet recipe: peak lr of the sandwich steps [0.05]")
    p.add_argument("--supernet-random-subnets", type=count(0, 2), default=None,
                   help="supernet recipe: random sub-networks per step beside the largest and smallest "
                        "(with --supernet-sampling uniform: all of them) [2]")
    p.add_argument("--supernet-augment", action="store_true", default=None,
                   help="supernet recipe: random crop and flip (photos, not digits)")
    p.add_argument("--supernet-sort-channels", action="store_true", default=None,
                   help="supernet recipe: reorder channels by importance after the largest-only steps")
    p.add_argument("--supernet-progressive", action="store_true", default=None,
                   help="supernet recipe: progressive shrinking (kernel, then depth, expansion, width)")
    p.add_argument("--supernet-sampling", default=None,
                   help="supernet recipe: sandwich or uniform (random sub-networks only, SPOS) [sandwich]")
    p.add_argument("--supernet-final-phase-share", type=amount("0.4"), default=None,
                   help="supernet recipe: with --supernet-progressive, the all-elastic phase's share of the steps")
    p.add_argument("--finalists", type=finalist_count, default=None, help="after the trials, train the K feasible "
                   "candidates with the highest estimates from scratch and choose among them by that accuracy; 0: "
                   "choose by the estimate; auto: the top estimate and the trials its validation images do not "
                   "separate from it (at most 8) [0]")
    p.add_argument("--finalist-steps", type=count(1, 300), default=None, help="training steps of each finalist [300]")
    p.add_argument("--noise-trials", type=count(0, 4), default=None, help="after the trials, estimate the top K again "
                   "with the next training seed (a second teacher or supernet, cached) to measure the estimate's seed "
                   "noise, which the estimate-noise line and --finalists auto then count; 0: off [4]")
    p.add_argument("--finalist-augment", action="store_true", default=None,
                   help="finalists train with random crop and flip (photos, not digits)")
    p.add_argument("--train-device", default=None, help="where training steps run (supernet, teacher, fine-tuning, "
                   "finalists): cpu, cuda, cuda:N, or auto (a GPU when torch sees one); estimates, latency and "
                   "export stay on the CPU [cpu]")
    p.add_argument("--max-train", type=count(1, 2000), default=None, help="use at most this many training images")
    p.add_argument("--max-val", type=count(1, 1000), default=None, help="use at most this many validation images")
    p.add_argument("--workers", type=count(1, 2), default=1, help="trials at once; more than 1 runs them as Ray tasks [1]")
    p.add_argument("--ray-address", default=None, help="run the workers on this Ray cluster (ray start --head prints "
                   "it), instead of a local Ray instance")
    p.add_argument("--cpus-per-worker", type=count(1, 2), default=None, help="CPUs (and torch threads) per worker "
                   "[local: cores / workers; cluster: 1]")
    p.add_argument("--gpus-per-worker", type=amount("0.5", zero=True), default=None, help="GPUs Ray reserves per worker, a fraction "
                   "shares one [1 when --train-device is a GPU, else 0]")
    p.add_argument("--heartbeat-interval", type=count(1, 10), default=10, help="seconds between a running trial's heartbeats [10]")
    p.add_argument("--grace-period", type=count(1, 60), default=60, help="a trial silent this many seconds belongs to a dead "
                   "worker: it is failed and re-run [60]")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def finalist_count(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"takes a count >= 0 (e.g. 3) or auto, not {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from autoc.errors import BudgetError
    from autoc.search.driver import SearchOptions, print_summary, run_search
    from autoc.search.resume import resume_options

    given = {
        "budget_ms": args.budget_ms, "budget_mj": args.budget_mj, "space": args.space, "dataset": args.dataset, "data_dir": args.data_dir,
        "device": args.device, "trials": args.trials, "timeout_s": args.timeout, "seed": args.seed,
        "sampler": args.sampler, "spread_start": args.spread_start, "finetune_steps": args.finetune_steps, "teacher_steps": args.teacher_steps, "supernet_steps": args.supernet_steps,
        "supernet_largest_steps": args.supernet_largest_steps, "supernet_lr": args.supernet_lr,
        "supernet_random_subnets": args.supernet_random_subnets, "supernet_augment": args.supernet_augment,
        "supernet_sort_channels": args.supernet_sort_channels, "supernet_progressive": args.supernet_progressive,
        "supernet_final_phase_share": args.supernet_final_phase_share, "supernet_sampling": args.supernet_sampling,
        "finalists": args.finalists, "finalist_steps": args.finalist_steps, "finalist_augment": args.finalist_augment,
        "noise_trials": args.noise_trials, "max_train": args.max_train, "max_val": args.max_val, "workers": args.workers, "train_device": args.train_device,
        "ray_address": args.ray_address, "cpus_per_worker": args.cpus_per_worker, "gpus_per_worker": args.gpus_per_worker,
        "heartbeat_interval_s": args.heartbeat_interval, "grace_period_s": args.grace_period,
        "runs_dir": args.runs_dir, "progress": not args.no_progress,
    }
    if args.resume is not None:
        options = resume_options(args.resume, storage=args.storage, given=given, study=args.study)
    else:
        if args.budget_ms is None:
            raise BudgetError("--budget-ms is required (the latency budget in ms, e.g. --budget-ms 20), unless --resume RUN_DIR")
        explicit = {key: value for key, value in given.items() if value is not None}
        options = SearchOptions(**explicit, storage=args.storage, study=args.study)
    result = run_search(options)
    print_summary(result, budget_ms=options.budget_ms)
    return 0
