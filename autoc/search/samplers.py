"""Optuna samplers by name, seeded per worker so parallel workers do not propose the same trials."""
from __future__ import annotations

import optuna

from autoc.errors import BudgetError
from autoc.search.options import SearchOptions

SAMPLERS = ("nsga2", "tpe", "random")


def make_sampler(options: SearchOptions, *, seed: int | None = None) -> optuna.samplers.BaseSampler:
    seed = options.seed if seed is None else seed
    if options.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup_trials(options))
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if options.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=startup_trials(options))
    raise BudgetError(f"--sampler {options.sampler!r} is unknown; use one of {', '.join(SAMPLERS)}")


def startup_trials(options: SearchOptions) -> int:
    """Trials the sampler takes before it models the study: TPE's start-up trials, NSGA-II's
    first population (a third of the trials, so that a small study still sees generations)."""
    if options.sampler == "nsga2":
        return max(4, min(50, options.trials // 3))
    return min(10, options.trials // 3 + 1)


def worker_seed(options: SearchOptions, *, worker_index: int, trials_stored: int) -> int:
    """Distinct per worker, and moved on by what the study already holds, so that a resumed
    run does not replay the random proposals of the first one."""
    return options.seed + 7919 * worker_index + trials_stored
