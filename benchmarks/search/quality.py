"""Search quality: the best found candidate vs the MobileNetV2 family at equal predicted latency,
and NSGA-II (or TPE, --sampler) vs random search at equal trial count (Pareto hypervolume).

1. Train (or load) the supernet; measure the baselines (``search.baselines``) with the recipe.
2. Run ``--trials`` trials with NSGA-II and with random sampling; each trial samples a candidate,
   predicts its host latency and scores it with the supernet estimate (the search's objective).
   NSGA-II / TPE start from random start-up trials, as the search does by default, or with
   ``--spread-start`` from candidates spread over the predicted-latency range below the reference
   latency (``autoc.search.startup``); ``--compare-starts`` runs both side by side.
3. Hypervolume of each study's (estimated accuracy, predicted latency) Pareto front, with the
   reference point (accuracy 0, latency = the largest MobileNetV2 baseline's).
4. At three budgets (the predicted latencies of MobileNetV2-0.5/0.75/1.0 fp32), the NSGA-II
   trial with the best estimate within the budget is trained with the same recipe as the
   baselines and compared with the best baseline within the budget.
   With ``--finalists K --selection N`` (the search's finalist stage): the search scores its
   estimates on N training-pool images left out of training (never on the held-out split),
   the K best estimates within each budget are trained by the recipe and the one most
   accurate on those N images is "found"; its held-out accuracy is what is compared. The
   baseline it is compared with is then chosen on the same N images too (search.baselines
   --selection N; the held-out-best baseline, an optimistic pick, is printed beside).

    python -m benchmarks.search.quality --data ../shared/data/cifar10-jpeg.zip --study sq
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
from pathlib import Path

import optuna

from autoc.candidate import Candidate
from autoc.commands.search import finalist_count
from autoc.evaluate.estimate import estimate_candidate
from autoc.evaluate.recipe import reference_accuracy
from autoc.training.loop import TrainConfig
from autoc.latency.device import open_latency_model
from autoc.search.ehvi import accuracy_latency_front
from autoc.search.finalists import finalist_picks
from autoc.search.options import SearchOptions
from autoc.search.results import CORRECT_ATTR, TrialRecord
from autoc.search.samplers import make_sampler, startup_trials
from autoc.search.separation import encode_correct, separation_text
from autoc.search.startup import SPREAD_SAMPLERS, enqueue_start, spread_start
from autoc.space import load_space, sample_candidate

from benchmarks.common import (BUDGET_BASELINES, Stopwatch, add_common_args, add_max_eval_arg, add_recipe_args,
                               at_least_one, baseline_family, config_key, estimate_config, load_data,
                               parameter_count, record_result, reference_cache, reference_recipe, seed_accuracies,
                               train_baselines, train_device, trained_supernet, write_baselines, write_json)


def hypervolume(points: list[tuple[float, float]], *, reference_ms: float, from_ms: float = 0.0) -> float:
    """Area dominated by (accuracy up, latency down) points above accuracy 0 and below ``reference_ms``;
    with ``from_ms``, only the part at latencies from there on (a point faster than it counts as at it)."""
    area, previous = 0.0, 0.0
    for acc, ms in accuracy_latency_front([p for p in points if p[1] < reference_ms]):
        area += (acc - previous) * (reference_ms - max(ms, from_ms))
        previous = acc
    return area


def fastest(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(accuracy, latency) of the fastest point (the front's fastest end)."""
    return min(points, key=lambda p: (p[1], -p[0]))


def common_range_gain(points, random_points, *, reference_ms: float) -> float:
    """Hypervolume gain over random search on the latency range both fronts reach: what extending the
    front to faster networks than random search found contributes is left out."""
    start = max(fastest(points)[1], fastest(random_points)[1])
    ours = hypervolume(points, reference_ms=reference_ms, from_ms=start)
    return ours / hypervolume(random_points, reference_ms=reference_ms, from_ms=start) - 1


def run_study(sampler_name, *, space, data, supernet, latency, trials, config, seed, budget_ms, spread=False,
              estimate_by="supernet", log=print):
    # the search's own sampler settings (population, start-up trials) and start for this trial count
    options = SearchOptions(budget_ms=budget_ms, sampler=sampler_name, trials=trials, seed=seed, spread_start=spread)
    sampler = make_sampler(options, space=space, latency=latency, num_classes=data.num_classes)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    if options.spread_start and sampler_name in SPREAD_SAMPLERS:
        enqueue_start(study, spread_start(space, latency, count=startup_trials(options), budget_ms=budget_ms,
                                          num_classes=data.num_classes, seed=seed))

    def objective(trial):
        candidate = sample_candidate(space, trial, num_classes=data.num_classes)
        ms = latency.predict(candidate.netspec(), candidate.policy)
        trial.set_user_attr("candidate", candidate.to_dict())
        if estimate_by == "params":  # size as the accuracy proxy: log parameters, no weights needed
            return math.log(parameter_count(candidate)), ms
        _, estimate = estimate_candidate(candidate, supernet=supernet, data=data, teacher_logits=None, config=config)
        trial.set_user_attr("seconds", estimate.seconds)
        trial.set_user_attr(CORRECT_ATTR, encode_correct(estimate.correct))
        return estimate.accuracy, ms

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with Stopwatch() as watch:
        study.optimize(objective, n_trials=trials)
    log(f"{sampler_name}: {trials} trials in {watch.seconds:.0f} s")
    return [(t.values[0], t.values[1], t.user_attrs["candidate"], t.user_attrs.get(CORRECT_ATTR)) for t in study.trials]


def reuse_baselines(path: Path, *, recipe: TrainConfig) -> list[dict]:
    """Baselines trained earlier by search.baselines; refused unless they were trained by ``recipe``."""
    stored = json.loads(path.read_text())
    if stored.get("recipe") != dataclasses.asdict(recipe):
        raise SystemExit(f"{path} was trained with recipe {stored.get('recipe')}, this comparison uses "
                         f"{dataclasses.asdict(recipe)}: re-run search.baselines with the same --proper-steps and --seed")
    print(f"baselines: {path} (same recipe)")
    return stored["baselines"]


def best_baseline(baselines: list[dict], budget: float, *, on_selection: bool) -> tuple[dict, dict]:
    """(The baseline within ``budget`` a fair comparison takes, the one most accurate on the held-out split).

    With a selection split the baseline is chosen on it, as the search chooses its finalist:
    the most accurate of eight noisy held-out figures is an optimistic pick (an oracle); it is
    reported beside. Without one (or for baselines trained before selection scores existed)
    both are the held-out best.
    """
    feasible = [b for b in baselines if b["latency_ms"] <= budget]
    oracle = max(feasible, key=lambda b: (b["accuracy"], -b["latency_ms"]))
    if on_selection and all(b.get("selection_accuracy") is not None for b in feasible):
        chosen = max(feasible, key=lambda b: (b["selection_accuracy"], -b["latency_ms"]))
        return chosen | {"chosen_on": "selection"}, oracle
    return oracle | {"chosen_on": "held-out"}, oracle


def seed_accuracies_of_baselines(space, data, *, recipe: TrainConfig, cache: Path, seeds: int) -> dict[str, list[float]]:
    """Every baseline's accuracies at ``seeds`` recipe seeds, from the cache: search.baselines --seeds trains them."""
    out = {}
    for name, candidate in baseline_family(space, num_classes=data.num_classes):
        found = seed_accuracies(candidate, data, recipe=recipe, cache=cache, seeds=seeds, train_missing=False)
        missing = [recipe.seed + s for s, a in enumerate(found) if a is None]
        if missing:
            raise SystemExit(f"{name} has no cached reference run at recipe seed(s) {missing}: train the baselines "
                             f"at {seeds} seeds first (search.baselines with the same data and recipe options, --seeds "
                             f"{seeds}), or drop --seeds")
        out[name] = found
    return out


def seeded_comparison(found: Candidate, space, baselines: list[dict], budget: float,
                      *, data, recipe: TrainConfig, cache: Path, seeds: int, device) -> dict:
    """The found network's mean over ``seeds`` recipe seeds against the baseline within ``budget`` whose mean is
    highest: each side's seed noise shrinks by sqrt(seeds), and no side gains from one lucky run. The found
    network's runs are trained (and cached) first, then the baselines' are read from the cache."""
    accuracies = seed_accuracies(found, data, recipe=recipe, cache=cache, seeds=seeds, device=device)
    baseline_seeds = seed_accuracies_of_baselines(space, data, recipe=recipe, cache=cache, seeds=seeds)
    means = {b["name"]: statistics.mean(baseline_seeds[b["name"]]) for b in baselines if b["latency_ms"] <= budget}
    best = max(means, key=means.get)
    found_mean = statistics.mean(accuracies)
    return {"found_seed_accuracies": accuracies, "found_mean": found_mean, "baseline_means": means,
            "mean_baseline": best, "mean_baseline_accuracy": means[best],
            "gain_mean_points": 100 * (found_mean - means[best])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--trials", type=int, default=24)
    add_recipe_args(parser, default_steps=40)
    parser.add_argument("--device", default="host")
    parser.add_argument("--study", default="search-quality", help="writes runs/<study>/baselines.json")
    parser.add_argument("--baselines", type=Path, default=None,
                        help="reuse a baselines.json written by search.baselines with the same --proper-steps and data")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/search_quality.json"))
    parser.add_argument("--sampler-seeds", type=int, default=1,
                        help="repeat the hypervolume comparison with this many sampler seeds")
    parser.add_argument("--first-sampler-seed", type=int, default=None,
                        help="sampler seeds start here (default --seed; --seed also picks the data and supernet)")
    parser.add_argument("--sampler", default="nsga2", choices=("nsga2", "tpe", "gp", "ehvi"), help="compared with random search")
    parser.add_argument("--also", nargs="*", default=[], choices=("nsga2", "tpe", "gp", "ehvi"),
                        help="more samplers in the hypervolume comparison, side by side on the same random studies")
    parser.add_argument("--spread-start", action="store_true",
                        help="the compared sampler starts from the latency-spread start (autoc search --spread-start)")
    parser.add_argument("--compare-starts", action="store_true",
                        help="run the compared sampler from both starts side by side ('<sampler>-spread' is the spread one)")
    parser.add_argument("--estimate", default="supernet", choices=("supernet", "params"),
                        help="what the search maximises beside latency: the supernet estimate, or the log parameter "
                             "count (no hypervolume then: it is not an accuracy)")
    parser.add_argument("--hypervolume-only", action="store_true",
                        help="skip training the found candidates (the per-budget comparison)")
    parser.add_argument("--finalists", type=finalist_count, default=1,
                        help="per budget, train this many of the best estimates by the recipe and choose among "
                             "them on the selection split (needs --selection unless 1); auto: the top estimate and "
                             "the trials its selection images do not separate from it (at most 8), as autoc search")
    parser.add_argument("--selection", type=int, default=None,
                        help="hold this many training-pool images out of training as the search's selection split: "
                             "estimates and finalists are scored on it, the held-out split only reports")
    add_max_eval_arg(parser)  # here on the search's split (the selection split with --selection)
    parser.add_argument("--seeds", type=at_least_one, default=1,
                        help="recipe seeds per compared network: the found one (still chosen on seed 0, as the search "
                             "does) is trained at seeds 0..N-1 and compared by its mean with the baselines' means "
                             "(train those first: search.baselines --seeds N)")
    args = parser.parse_args()

    if args.estimate == "params" and (args.hypervolume_only or args.compare_starts):
        parser.error("--estimate params has no hypervolume (log parameters are not an accuracy): drop "
                     "--hypervolume-only / --compare-starts")
    if args.finalists != 1 and args.selection is None:
        parser.error("--finalists K > 1 or auto chooses on a selection split: give --selection N (e.g. 2500)")
    space = load_space(args.space)
    data = load_data(args, space)
    search_data = data.selection_as_val() if args.selection else data  # what the search may look at
    latency = open_latency_model(args.device, runs_dir=args.runs_dir, space=space, progress=True)
    # a search by parameter count needs no supernet: none is trained or loaded for it
    run = trained_supernet(args, space, data)[0] if args.estimate == "supernet" else None
    recipe, cache = reference_recipe(args), reference_cache(args)
    if args.baselines:
        baselines = reuse_baselines(args.baselines, recipe=recipe)
        family = dict(baseline_family(space, num_classes=data.num_classes))
        for row in baselines:  # latency from today's profile, as the search's candidates get
            candidate = family[row["name"]]
            row["latency_ms"] = latency.predict(candidate.netspec(), candidate.policy)
    else:
        baselines = train_baselines(space, data, latency, recipe=recipe, cache_dir=cache, device=train_device(args))
    write_baselines(args.runs_dir / args.study / "baselines.json", baselines, recipe=recipe)

    config = estimate_config(args)
    reference = max(b["latency_ms"] for b in baselines)
    runs = []
    first = args.seed if args.first_sampler_seed is None else args.first_sampler_seed
    for sampler_seed in range(first, first + args.sampler_seeds):
        studies = {args.sampler: args.spread_start, **{name: args.spread_start for name in args.also}, "random": False}
        if args.compare_starts:
            studies[args.sampler] = False
            studies[f"{args.sampler}-spread"] = True
        if args.estimate == "params":  # no accuracy to take a hypervolume of: the search alone
            studies = {args.sampler: args.spread_start}
        trials = {name: run_study(name.split("-")[0], space=space, data=search_data, supernet=run and run.supernet,
                                  latency=latency, trials=args.trials, config=config, seed=sampler_seed,
                                  budget_ms=reference, spread=spread, estimate_by=args.estimate)
                  for name, spread in studies.items()}
        runs.append({"seed": sampler_seed, "trials": trials})
        if "random" not in trials:
            continue
        points = {name: [(a, ms) for a, ms, *_ in rows] for name, rows in trials.items()}
        volumes = {name: hypervolume(p, reference_ms=reference) for name, p in points.items()}
        gains = {name: volumes[name] / volumes["random"] - 1 if volumes["random"] else float("nan")
                 for name in volumes if name != "random"}
        common = {name: common_range_gain(p, points["random"], reference_ms=reference)
                  for name, p in points.items() if name != "random"}
        print(f"sampler seed {sampler_seed}: hypervolume (accuracy x ms below {reference:.3f} ms): random "
              f"{volumes['random']:.4f}, " + ", ".join(f"{n} {volumes[n]:.4f} ({g:+.1%}; over the common latency "
                                                        f"range {common[n]:+.1%})" for n, g in gains.items())
              + "; fastest: " + ", ".join(f"{n} {fastest(p)[1]:.3f} ms at {fastest(p)[0]:.3f}"
                                          for n, p in points.items()), flush=True)
        runs[-1] |= {"hypervolume": volumes, "gain": gains[args.sampler], "gains": gains, "common_range_gains": common,
                     "fastest": {n: fastest(p) for n, p in points.items()}}
    hypervolume_figures = {}
    for name in runs[0].get("gains", {}):
        for label, key in (("hypervolume gain", "gains"), ("  over the common latency range", "common_range_gains")):
            gains = [r[key][name] for r in runs]
            mean = sum(gains) / len(gains)
            error = statistics.stdev(gains) / math.sqrt(len(gains)) if len(gains) > 1 else float("nan")
            hypervolume_figures[f"{name} vs random: {label.strip()}, mean over {len(gains)} seeds (%)"] = 100 * mean
            hypervolume_figures[f"{name} vs random: {label.strip()}, standard error (%)"] = 100 * error
            print(f"{label} of {name} over random at {args.trials} trials: mean {mean:+.1%} (SE {error:.1%}; "
                  f"{sum(g >= 0.1 for g in gains)} of {len(gains)} seeds at +10% or more) "
                  f"({', '.join(f'{g:+.1%}' for g in gains)})")
    trials = runs[0]["trials"]
    if args.hypervolume_only:
        write_json(args.out, {"hypervolume_runs": [{k: v for k, v in r.items() if k != "trials"} for r in runs],
                              "reference_ms": reference, "settings": {k: str(v) for k, v in vars(args).items()}})
        record_result("search.quality", config_key(args, extra="hypervolume"),
                      title=f"Pareto hypervolume of {args.sampler} against random search, {args.trials} trials, "
                            f"reference {reference:.3f} ms", figures=hypervolume_figures)
        return 0

    budgets = [b["latency_ms"] for b in baselines if b["name"] in BUDGET_BASELINES]
    comparisons = []
    for budget in budgets:
        records = [TrialRecord(number=i, accuracy=estimate, latency_ms=ms, size_bytes=0, params=0, macs=0,
                               feasible=ms <= budget, candidate=candidate, weights=None, correct=correct)
                   for i, (estimate, ms, candidate, correct) in enumerate(trials[args.sampler])]
        picks = finalist_picks(records, args.finalists)  # the search's own choice of finalists
        if picks and (noise := separation_text(picks[0], records)):  # as `autoc search` says of its top estimate
            print(f"budget {budget:.3f} ms, {noise}", flush=True)
        best_base, oracle_base = best_baseline(baselines, budget, on_selection=bool(args.selection))
        if not picks:
            print(f"budget {budget:.3f} ms: no trial within the budget")
            continue
        finalists = []
        for pick in picks:
            result = reference_accuracy(Candidate.from_dict(pick.candidate), data, config=recipe, cache_dir=cache,
                                        selection=search_data if args.selection else None,
                                        device=train_device(args))
            finalists.append({"trial": pick.number, "candidate": pick.candidate, "estimate": pick.accuracy,
                              "latency_ms": pick.latency_ms,
                              "accuracy": result.accuracy, "selection_accuracy": result.selection_accuracy,
                              "seconds": result.seconds, "cached": result.cached})
            print(f"  budget {budget:.3f} ms, finalist trial {pick.number}: estimate {pick.accuracy:.4f}, "
                  f"{pick.latency_ms:.3f} ms, selection {result.selection_accuracy or float('nan'):.4f}, "
                  f"held-out {result.accuracy:.4f} ({'cached' if result.cached else f'{result.seconds:.0f} s'})",
                  flush=True)
        found = max(finalists, key=lambda f: (f["selection_accuracy"] or 0.0, -f["latency_ms"]))
        comparisons.append({"budget_ms": budget, "found_accuracy": found["accuracy"],
                            "found_latency_ms": found["latency_ms"], "found_estimate": found["estimate"],
                            "top_estimate_accuracy": finalists[0]["accuracy"], "finalists": finalists,
                            "baseline": best_base["name"], "baseline_chosen_on": best_base["chosen_on"],
                            "baseline_accuracy": best_base["accuracy"], "baseline_latency_ms": best_base["latency_ms"],
                            "gain_points": 100 * (found["accuracy"] - best_base["accuracy"]),
                            "oracle_baseline": oracle_base["name"],
                            "gain_over_oracle_points": 100 * (found["accuracy"] - oracle_base["accuracy"])})
        c = comparisons[-1]
        if args.seeds > 1:
            c |= seeded_comparison(Candidate.from_dict(found["candidate"]), space, baselines, budget,
                                   data=data, recipe=recipe, cache=cache, seeds=args.seeds, device=train_device(args))
        print(f"budget {budget:.3f} ms: found {c['found_accuracy']:.4f} at {c['found_latency_ms']:.3f} ms "
              f"(of {len(finalists)} finalist(s); the top estimate alone: {c['top_estimate_accuracy']:.4f}) vs "
              f"{c['baseline']} {c['baseline_accuracy']:.4f} at {c['baseline_latency_ms']:.3f} ms, the best "
              f"baseline on the {c['baseline_chosen_on']} split ({c['gain_points']:+.1f} points; vs the best "
              f"held-out baseline {c['oracle_baseline']}: {c['gain_over_oracle_points']:+.1f})", flush=True)
        if "found_mean" in c:
            print(f"budget {budget:.3f} ms, mean of {args.seeds} recipe seeds: found {c['found_mean']:.4f} "
                  f"({' / '.join(f'{a:.4f}' for a in c['found_seed_accuracies'])}) vs {c['mean_baseline']} "
                  f"{c['mean_baseline_accuracy']:.4f}, the best baseline by its mean ({c['gain_mean_points']:+.1f} "
                  f"points)", flush=True)
    write_json(args.out, {"hypervolume_runs": [{k: v for k, v in r.items() if k != "trials"} for r in runs],
                          "reference_ms": reference,
                          "comparisons": comparisons, "baselines": baselines,
                          "settings": {k: str(v) for k, v in vars(args).items()},
                          "supernet_train_seconds": run and run.train_seconds})
    found_figures = dict(hypervolume_figures)
    for c in comparisons:
        found_figures[f"budget {c['budget_ms']:.3f} ms: found vs {c['baseline']} (points)"] = c["gain_points"]
        if "gain_mean_points" in c:
            found_figures[f"budget {c['budget_ms']:.3f} ms: found vs the best baseline, mean of {args.seeds} recipe "
                          "seeds (points)"] = c["gain_mean_points"]
    record_result("search.quality", config_key(args, extra="found"),
                  title=f"Found network vs the best MobileNetV2 baseline within each budget ({args.sampler}, "
                        f"{args.trials} trials, {args.finalists} finalists)", figures=found_figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
