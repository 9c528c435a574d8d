"""The search's first trials, spread over the predicted-latency range within the budget.

A candidate's latency is known before it is trained (the latency model costs ~0.1 ms), its
accuracy is not. Random start-up trials cluster where most of the space lies; the ends of the
Pareto front (the fastest networks, the largest within the budget) are where they leave gaps,
and where a user's trade-off is decided. So the start-up trials of a model-based sampler (TPE,
NSGA-II) are chosen from a pool of random candidates at evenly spaced quantiles of their
predicted latency, over-budget ones left out, the fastest first; the sampler then learns from
them as from random start-up trials. The pool is priced without new measurements (a host
model prices the units it lacks by a prior fitted on those it has): only an order is needed,
and the chosen candidates are measured as every trial is. Random search stays random (it is
what searches are compared with).
"""
from __future__ import annotations

from typing import Mapping

import optuna

from autoc.latency.blocks import network_units
from autoc.latency.model import LatencyModel, LookupTableLatencyModel
from autoc.space import SearchSpace, random_sampling_study, sample_candidate

POOL = 500  # random candidates whose latency is predicted (~0.1 s in all)
SPREAD_SAMPLERS = ("tpe", "nsga2", "gp", "ehvi")


def spread_start(
    space: SearchSpace,
    latency: LatencyModel,
    *,
    count: int,
    budget_ms: float,
    budget_mj: float | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    pool: int = POOL,
) -> list[dict[str, object]]:
    """Trial parameters of ``count`` candidates within the budgets at evenly spaced quantiles of
    predicted latency over ``pool`` random ones (fewer when fewer are feasible)."""
    if count < 1:
        return []
    sampler_study = random_sampling_study(seed=seed)
    trials = [sampler_study.ask() for _ in range(pool)]
    candidates = [sample_candidate(space, trial, num_classes=num_classes) for trial in trials]
    specs = [(c.netspec(), c.policy) for c in candidates]
    if isinstance(latency, LookupTableLatencyModel):  # a host model would measure every unit it lacks: minutes
        try:
            latency = latency.without_measuring(u for spec, policy in specs for u in network_units(spec, policy))
        except ValueError:  # none of the pool's units measured yet: no prior to price them by; start at random
            return []
    feasible: list[tuple[float, dict[str, object]]] = []
    for trial, (spec, policy) in zip(trials, specs):
        ms = latency.predict(spec, policy)
        if ms > budget_ms or (budget_mj is not None and latency.predict_energy_mj(spec, policy) > budget_mj):
            continue
        feasible.append((ms, dict(trial.params)))
    feasible.sort(key=lambda item: item[0])
    if len(feasible) <= count:
        return [params for _, params in feasible]
    picks = [round(i * (len(feasible) - 1) / (count - 1)) for i in range(count)] if count > 1 else [0]
    return [feasible[i][1] for i in picks]


def enqueue_start(study: optuna.Study, start: list[Mapping[str, object]]) -> int:
    """Queue the start-up trials in a study that has none yet (a resumed study keeps its own);
    returns how many were queued."""
    if study.get_trials(deepcopy=False):
        return 0
    for params in start:
        study.enqueue_trial(dict(params), skip_if_exists=True)  # a pool may hold one candidate twice
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
