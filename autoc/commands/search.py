"""`autoc search`: architecture + compression policy search under a latency budget.

Every option flag stores into its SearchOptions field (``dest`` is the field's dotted path, e.g.
``workers.count`` for --workers) and is left out of the namespace when not given, so that a recipe
file (--config) and the options stored with a study (--resume) can supply it; the defaults shown
in --help are the dataclasses' own.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autoc.commands._flags import given_options, option_flags
from autoc.commands._numbers import amount, count
from autoc.search.options import field_default as default


def register(sub: argparse._SubParsersAction) -> None:
    """Add `autoc search`: each option flag stores into its SearchOptions field."""
    p = sub.add_parser("search", help="search architecture + compression policy under a latency budget")
    p.argument_default = argparse.SUPPRESS  # a flag left out is absent: the file, the stored study or the default rule

    def add(flag: str, field: str, help: str, **kwargs: Any) -> None:
        if kwargs.get("action") is None:
            kwargs.setdefault("metavar", flag[2:].upper().replace("-", "_"))
        p.add_argument(flag, dest=field, help=help, **kwargs)

    add("--budget-ms", "budget_ms", "latency budget per inference on the device, in ms (required unless --resume, "
        "or given in --config); several (e.g. 12 16 20 25) give one chosen model per budget from one study, "
        "trials over the largest priced and not trained", type=amount("20"), nargs="+")
    add("--budget-mj", "budget_mj", "energy budget per inference in mJ, estimated from the device profile's energy "
        "model (autoc latency predict shows it); optional", type=amount("0.5"))
    add("--space", "space", f"search space name (search_spaces/NAME.yaml) or YAML path [{default('space')}]")
    add("--dataset", "dataset", f"digits (bundled), cifar10 or imagefolder [{default('dataset')}]")
    add("--data-dir", "data_dir", "dataset location for cifar10 / imagefolder")
    add("--device", "device", f"device profile: host (this machine), a shipped profile (autoc devices lists them) or one "
        f"calibrated under --runs-dir [{default('device')}]")
    add("--storage", "storage.url", "Optuna storage URL (default sqlite in runs/<study>/study.db); "
        "postgresql://user@host:5432/db for several machines")
    add("--study", "storage.study", "study name; an existing one is resumed")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue the study in RUN_DIR (runs/<study>) with its stored options; flags given override")
    p.add_argument("--config", type=Path, default=None, metavar="RECIPE_YAML",
                   help="read options from a YAML recipe file: SearchOptions field names, groups as mappings "
                        "(e.g. supernet: {steps: 150}); flags given override it")
    add("--trials", "trials", f"total trials of the study, counted across resumes [{default('trials')}]",
        type=count(1, default("trials")))
    add("--timeout", "timeout_s", "stop starting trials after this many seconds", type=amount("3600"))
    add("--seed", "seed", f"[{default('seed')}]", type=count(0, default("seed")))
    add("--sampler", "sampler", f"tpe, nsga2, gp, ehvi or random [{default('sampler')}]")
    add("--spread-start", "spread_start", "TPE / NSGA-II start from candidates spread over the predicted-latency "
        "range within the budget, not from random ones", action="store_true")
    add("--runs-dir", "storage.runs_dir", f"where studies, caches and profiles live [{default('storage.runs_dir')}]",
        type=Path)
    add("--finetune-steps", "finetune_steps", f"KD fine-tuning steps per candidate [{default('finetune_steps')}]",
        type=count(0, default("finetune_steps")))
    add("--teacher-steps", "teacher_steps", f"training steps of the largest network [{default('teacher_steps')}]",
        type=count(1, default("teacher_steps")))
    add("--supernet-steps", "supernet.steps", "train (or load from runs/cache) a weight-sharing supernet for this "
        "many sandwich-rule steps and let candidates inherit from it; 0 inherits from the briefly trained largest "
        "network [0]", type=count(0, default("supernet.steps")))
    add("--supernet-largest-steps", "supernet.largest_steps", "supernet recipe, as `autoc supernet train "
        f"--largest-steps`: train the largest network alone this many steps first [{default('supernet.largest_steps')}]",
        type=count(0, 100))
    add("--supernet-lr", "supernet.lr", f"supernet recipe: peak lr of the sandwich steps [{default('supernet.lr')}]",
        type=amount(str(default("supernet.lr"))))
    add("--supernet-random-subnets", "supernet.random_subnets", "supernet recipe: random sub-networks per step beside "
        "the largest and smallest (with --supernet-sampling uniform: all of them) "
        f"[{default('supernet.random_subnets')}]", type=count(0, default("supernet.random_subnets")))
    add("--supernet-augment", "supernet.augment", "supernet recipe: random crop and flip (photos, not digits)",
        action="store_true")
    add("--supernet-sort-channels", "supernet.sort_channels", "supernet recipe: reorder channels by importance after "
        "the largest-only steps", action="store_true")
    add("--supernet-progressive", "supernet.progressive", "supernet recipe: progressive shrinking (kernel, then "
        "depth, expansion, width)", action="store_true")
    add("--supernet-sampling", "supernet.sampling", "supernet recipe: sandwich or uniform (random sub-networks only, "
        f"SPOS) [{default('supernet.sampling')}]")
    add("--supernet-final-phase-share", "supernet.final_phase_share", "supernet recipe: with --supernet-progressive, "
        "the all-elastic phase's share of the steps", type=amount("0.4"))
    add("--finalists", "finalists.count", "after the trials, train the K feasible candidates with the highest "
        "estimates from scratch and choose among them by that accuracy; 0: choose by the estimate; auto: the top "
        "estimate and the trials its validation images do not separate from it (at most 8) "
        f"[{default('finalists.count')}]", type=finalist_count)
    add("--finalist-steps", "finalists.steps", f"training steps of each finalist [{default('finalists.steps')}]",
        type=count(1, default("finalists.steps")))
    add("--noise-trials", "finalists.noise_trials", "after the trials, estimate the top K again with the next "
        "training seed (a second teacher or supernet, cached) to measure the estimate's seed noise, which the "
        f"estimate-noise line and --finalists auto then count; 0: off [{default('finalists.noise_trials')}]",
        type=count(0, default("finalists.noise_trials")))
    add("--finalist-augment", "finalists.augment", "finalists train with random crop and flip (photos, not digits)",
        action="store_true")
    add("--train-device", "train_device", "where training steps run (supernet, teacher, fine-tuning, finalists): "
        "cpu, cuda, cuda:N, or auto (a GPU when torch sees one); estimates, latency and export stay on the CPU "
        f"[{default('train_device')}]")
    add("--max-train", "max_train", "use at most this many training images", type=count(1, 2000))
    add("--max-val", "max_val", "use at most this many validation images", type=count(1, 1000))
    add("--workers", "workers.count", f"trials at once; more than 1 runs them as Ray tasks [{default('workers.count')}]",
        type=count(1, 2))
    add("--ray-address", "workers.ray_address", "run the workers on this Ray cluster (ray start --head prints it), "
        "instead of a local Ray instance")
    add("--cpus-per-worker", "workers.cpus", "CPUs (and torch threads) per worker [local: cores / workers; "
        "cluster: 1]", type=count(1, 2))
    add("--gpus-per-worker", "workers.gpus", "GPUs Ray reserves per worker, a fraction shares one [1 when "
        "--train-device is a GPU, else 0]", type=amount("0.5", zero=True))
    add("--heartbeat-interval", "workers.heartbeat_interval_s", "seconds between a running trial's heartbeats "
        f"[{default('workers.heartbeat_interval_s')}]", type=count(1, default("workers.heartbeat_interval_s")))
    add("--grace-period", "workers.grace_period_s", "a trial silent this many seconds belongs to a dead worker: it "
        f"is failed and re-run [{default('workers.grace_period_s')}]", type=count(1, default("workers.grace_period_s")))
    add("--no-progress", "progress", "no progress bars", action="store_false")
    # the caches are in RUNS_DIR/cache: an error naming the supernet's cache_dir shows --runs-dir
    p.set_defaults(handler=run, option_flags={**option_flags(p), "cache_dir": "--runs-dir", "budgets_ms": "--budget-ms"})


def finalist_count(text: str) -> int | str:
    """The --finalists value: a count >= 0 or the word auto."""
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
    """Run (or resume) a search from the flags, a recipe file and the stored options, and print its summary."""
    from autoc.errors import OptionError
    from autoc.search.driver import SearchOptions, run_search, summary_lines
    from autoc.search.options import budget_list
    from autoc.search.recipe_file import read_recipe
    from autoc.search.resume import merge_options, resume_options

    given = given_options(args)
    supernet = given.get("supernet")
    if supernet is not None and supernet.get("steps") == 0:
        given["supernet"] = None  # --supernet-steps 0: no supernet, whatever else the recipe says
    recipe = budget_list(read_recipe(args.config)) if args.config is not None else {}
    wanted = merge_options(recipe, budget_list(given))  # --budget-ms 12 16 20: a sweep, 20 the largest
    if args.resume is not None:
        storage = wanted.get("storage", {}).get("url")
        study = wanted.get("storage", {}).get("study")
        options = resume_options(args.resume, storage=storage, given=wanted, study=study)
    else:
        if "budget_ms" not in wanted:
            raise OptionError("--budget-ms is required (the latency budget in ms, e.g. --budget-ms 20), unless "
                              "--resume RUN_DIR or a --config file gives budget_ms")
        options = SearchOptions.from_dict(wanted)
    result = run_search(options)
    print("\n".join(summary_lines(result, budget_ms=options.budget_ms)))
    return 0
