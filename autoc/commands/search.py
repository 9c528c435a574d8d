"""`autoc search`: architecture + compression policy search under a latency budget."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search architecture + compression policy under a latency budget")
    p.add_argument("--budget-ms", type=float, required=True, help="latency budget per inference on the device, in ms")
    p.add_argument("--space", default="mbv2-cifar", help="search space name (search_spaces/NAME.yaml) or YAML path")
    p.add_argument("--dataset", default="digits", help="digits (bundled), cifar10 or imagefolder")
    p.add_argument("--data-dir", default=None, help="dataset location for cifar10 / imagefolder")
    p.add_argument("--device", default="host", help="device profile: host, or a calibrated profile name")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite in runs/<study>/study.db)")
    p.add_argument("--study", default=None, help="study name; an existing one is resumed")
    p.add_argument("--trials", type=int, default=30, help="total trials of the study, counted across resumes")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", default="nsga2", help="nsga2, tpe or random")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where studies, caches and profiles live")
    p.add_argument("--finetune-steps", type=int, default=20, help="KD fine-tuning steps per candidate")
    p.add_argument("--teacher-steps", type=int, default=120, help="training steps of the largest network")
    p.add_argument("--max-train", type=int, default=None, help="use at most this many training images")
    p.add_argument("--max-val", type=int, default=None, help="use at most this many validation images")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from autoc.search.driver import SearchOptions, print_summary, run_search

    options = SearchOptions(
        budget_ms=args.budget_ms,
        space=args.space,
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
        storage=args.storage,
        study=args.study,
        trials=args.trials,
        timeout_s=args.timeout,
        seed=args.seed,
        sampler=args.sampler,
        runs_dir=args.runs_dir,
        finetune_steps=args.finetune_steps,
        teacher_steps=args.teacher_steps,
        max_train=args.max_train,
        max_val=args.max_val,
        progress=not args.no_progress,
    )
    result = run_search(options)
    print_summary(result, budget_ms=args.budget_ms)
    return 0
