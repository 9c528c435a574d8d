"""A sampler that knows each candidate's latency before it is trained (``--sampler ehvi``).

TPE, NSGA-II and the GP sampler model latency as if it were as costly to learn as accuracy;
here it costs ~0.1 ms from the latency model. So each proposal is chosen from a pool of
candidates whose latency is computed exactly: random ones within the budgets and mutations
of measured ones (1-4 parameters changed), scored by the expected improvement of the
(accuracy up, latency down) hypervolume they would bring. Accuracy is predicted by a
Bayesian ridge regression on a few size features (latency, log MACs, log stored bytes), with
its predictive spread; where the features predict little (a short supernet estimate at CPU
scale varies by about its own evaluation noise, whatever the size), the expectation falls
back on extending the front where it is sparse: faster networks, and gaps along latency.
Over-budget candidates are never proposed. Trials other workers are running count as done
at their predicted accuracy, so that parallel workers spread out. The first trials are the
start-up ones (random, or the latency-spread start that ``--spread-start`` queues).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from autoc.errors import SpaceError
from autoc.evaluate.metrics import size_bytes, spec_macs
from autoc.latency.model import LatencyModel
from autoc.space import SearchSpace
from autoc.space.params import parameter_plan, search_distributions
from autoc.space.sample import candidate_from_params

RANDOM_POOL = 256  # random candidates priced per proposal (~1 ms each)
MUTANT_POOL = 256  # measured candidates with a few parameters changed
RIDGE = 1.0  # prior precision of the standardised feature weights


@dataclass(frozen=True)
class Priced:
    """A candidate's params with its predicted latency and size features, known before it is trained."""

    params: dict[str, Any]
    identity: str  # the network and policy these params build (several params can build one)
    latency_ms: float
    features: tuple[float, ...]


class KnownLatencySampler(BaseSampler):
    """Expected hypervolume improvement over candidates priced by the latency model; objective 0
    of the study is the accuracy to maximise (the others are recomputed from the candidate)."""

    def __init__(
        self,
        space: SearchSpace,
        latency: LatencyModel,
        *,
        budget_ms: float,
        budget_mj: float | None = None,
        num_classes: int | None = None,
        startup_trials: int = 10,
        seed: int | None = None,
    ) -> None:
        self._space = space
        self._latency = latency
        self._budget_ms = budget_ms
        self._budget_mj = budget_mj
        self._num_classes = num_classes
        self._startup = startup_trials
        self._rng = np.random.default_rng(seed)
        self._fallback = RandomSampler(seed=seed)
        self._searched = [p for p in parameter_plan(space) if p.searched]
        self._priced: dict[tuple, Priced | None] = {}  # the study's trials by params; None: over a budget

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(search_distributions(self._space))

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        measured = [(self.price(t.params), t.values[0]) for t in _complete(study)]
        measured = [(p, accuracy) for p, accuracy in measured if p is not None]
        if len(measured) < self._startup:
            return {}  # start-up: independent random proposals
        seen = {p.identity for p in (self.price(t.params) for t in study.get_trials(deepcopy=False) if t.params) if p}
        pool = []
        for priced in self._pool([p for p, _ in measured]):
            if priced.identity not in seen:  # e.g. params differing only in an fp32 layer's unused bit width
                seen.add(priced.identity)
                pool.append(priced)
        if not pool:
            return {}
        # trials other workers are running count as done at their predicted accuracy (a "believer"),
        # so that parallel workers do not all chase the same gap in the front
        pending = [p for p in (self.price(t.params) for t in _running(study, but=trial.number)) if p is not None]
        mean, spread = _predict([p.features for p, _ in measured], [a for _, a in measured],
                                [p.features for p in pool + pending])
        believed = [(float(m), p.latency_ms) for p, m in zip(pending, mean[len(pool):])]
        front = accuracy_latency_front([(a, p.latency_ms) for p, a in measured] + believed)
        reference = self._budget_ms
        gains = [expected_improvement(front, latency_ms=p.latency_ms, mean=m, spread=s, reference_ms=reference)
                 for p, m, s in zip(pool, mean, spread)]
        return dict(pool[int(np.argmax(gains))].params)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def price(self, params: dict[str, Any]) -> Priced | None:
        """Latency and features of the candidate a trial's params build (kept: trials are priced at
        every proposal); None when it is over a budget or the params are not this space's (a trial
        of another study, or one another worker is still suggesting)."""
        key = _key(params)
        if key not in self._priced:
            self._priced[key] = self._price(params)
        return self._priced[key]

    def _price(self, params: dict[str, Any]) -> Priced | None:
        try:
            candidate = candidate_from_params(self._space, params, num_classes=self._num_classes)
        except SpaceError:  # params from elsewhere: not a measurement of this space
            return None
        spec = candidate.netspec()
        latency = self._latency.predict(spec, candidate.policy)
        if latency > self._budget_ms:
            return None
        if self._budget_mj is not None and self._latency.predict_energy_mj(spec, candidate.policy) > self._budget_mj:
            return None
        features = (latency, math.log(spec_macs(spec)), math.log(size_bytes(spec, candidate.policy)))
        identity = json.dumps(candidate.to_dict(), sort_keys=True)
        return Priced(params=dict(params), identity=identity, latency_ms=latency, features=features)

    def _pool(self, measured: Sequence[Priced]) -> list[Priced]:
        proposals = [self._random_params() for _ in range(RANDOM_POOL)]
        parents = [p.params for p in measured]
        for _ in range(MUTANT_POOL):
            proposals.append(self._mutate(parents[int(self._rng.integers(len(parents)))]))
        priced = (self._price(params) for params in proposals)  # not kept: 512 new ones per proposal
        return [p for p in priced if p is not None]

    def _random_params(self) -> dict[str, Any]:
        return {p.name: p.choices[int(self._rng.integers(len(p.choices)))] for p in self._searched}

    def _mutate(self, params: dict[str, Any]) -> dict[str, Any]:
        child = dict(params)
        for index in self._rng.choice(len(self._searched), size=int(self._rng.integers(1, 5)), replace=False):
            param = self._searched[int(index)]
            child[param.name] = param.choices[int(self._rng.integers(len(param.choices)))]
        return child


def accuracy_latency_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (accuracy, latency) points no other point beats on both, by latency ascending (the two-objective
    front of a hypervolume; ``autoc.search.results.pareto_front`` is the three-objective one of trial records)."""
    front: list[tuple[float, float]] = []
    for accuracy, latency in sorted(points, key=lambda p: (p[1], -p[0])):
        if not front or accuracy > front[-1][0]:
            front.append((accuracy, latency))
    return front


def expected_improvement(front: Sequence[tuple[float, float]], *, latency_ms: float, mean: float, spread: float,
                         reference_ms: float) -> float:
    """Expected growth of the hypervolume (accuracy above 0 x latency below ``reference_ms``) when a
    point at ``latency_ms`` with accuracy ~ Normal(mean, spread) joins ``front``: over each latency
    segment from ``latency_ms`` on, E[max(0, accuracy - the front's best there)] x the segment's width."""
    if latency_ms >= reference_ms:
        return 0.0
    edges = [latency_ms] + [lat for _, lat in front if latency_ms < lat < reference_ms] + [reference_ms]
    gain = 0.0
    for left, right in zip(edges, edges[1:]):
        best = max((acc for acc, lat in front if lat <= left), default=0.0)
        gain += (right - left) * _expected_excess(mean, spread, best)
    return gain


def _expected_excess(mean: float, spread: float, threshold: float) -> float:
    """E[max(0, X - threshold)] for X ~ Normal(mean, spread)."""
    if spread <= 0:
        return max(0.0, mean - threshold)
    z = (mean - threshold) / spread
    return (mean - threshold) * 0.5 * math.erfc(-z / math.sqrt(2)) + spread * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _predict(train_x: Sequence[Sequence[float]], train_y: Sequence[float],
             query_x: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Bayesian ridge regression on standardised features: predictive mean and spread."""
    x, y, q = np.asarray(train_x, float), np.asarray(train_y, float), np.asarray(query_x, float)
    centre, scale = x.mean(axis=0), x.std(axis=0) + 1e-12
    x, q = (x - centre) / scale, (q - centre) / scale
    y_mean = y.mean()
    precision = x.T @ x + RIDGE * np.eye(x.shape[1])
    weights = np.linalg.solve(precision, x.T @ (y - y_mean))
    residual = y - y_mean - x @ weights
    noise = math.sqrt(max(float(residual @ residual) / max(len(y) - 1, 1), 1e-8))
    mean = y_mean + q @ weights
    variance = noise ** 2 * (1 + 1 / len(y) + np.einsum("ij,jk,ik->i", q, np.linalg.inv(precision), q))
    return mean, np.sqrt(variance)


def _complete(study: Study) -> list[FrozenTrial]:
    """Finished trials with values (``price`` then leaves out those over a budget, scored 0 unmeasured)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]


def _running(study: Study, *, but: int) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number != but and t.params]


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((name, repr(value)) for name, value in params.items()))

