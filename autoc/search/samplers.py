"""Optuna samplers by name, seeded per worker so parallel workers do not propose the same trials;
or the sampler instance the options carry, used as given (each Ray worker gets its own copy)."""
from __future__ import annotations

import optuna

from autoc.errors import OptionError
from autoc.latency.model import LatencyModel
from autoc.search.ehvi import KnownLatencySampler
from autoc.search.options import SAMPLERS, SearchOptions
from autoc.space import SearchSpace

__all__ = ["SAMPLERS", "make_sampler", "startup_trials", "worker_seed"]


def make_sampler(options: SearchOptions, *, seed: int | None = None, space: SearchSpace | None = None,
                 latency: LatencyModel | None = None, num_classes: int | None = None) -> optuna.samplers.BaseSampler:
    """``space`` and ``latency`` are needed by ``ehvi`` only (it prices candidates before proposing them)."""
    if isinstance(options.sampler, optuna.samplers.BaseSampler):
        return options.sampler
    seed = options.seed if seed is None else seed
    if options.sampler == "ehvi":
        if space is None or latency is None:
            raise ValueError("the ehvi sampler prices candidates: pass the space and the latency model")
        return KnownLatencySampler(space, latency, budget_ms=options.budget_ms, budget_mj=options.budget_mj,
                                   num_classes=num_classes, startup_trials=startup_trials(options), seed=seed)
    if options.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup_trials(options))
    if options.sampler == "gp":  # Gaussian process, log expected hypervolume improvement: ~2 s per proposal
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials(options),
                                         warn_independent_sampling=False)
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if options.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=startup_trials(options))
    raise OptionError(f"sampler {options.sampler!r} is unknown: set sampler to one of {', '.join(SAMPLERS)}",
                      fields=("sampler",))


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
