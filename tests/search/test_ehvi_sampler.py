"""The known-latency sampler (``--sampler ehvi``): expected hypervolume improvement over candidates
whose latency the model gives before they are trained."""
import json
import math
import random

import optuna
import pytest

from autoc.search.driver import SearchOptions, run_search
from autoc.search.ehvi import KnownLatencySampler, accuracy_latency_front, expected_improvement
from autoc.space import candidate_from_params, sample_candidate
from conftest import prior_priced, tiny_options


def _hypervolume(points, reference_ms):
    """Area above accuracy 0 and below ``reference_ms`` dominated by (accuracy, latency) points, on a
    fine latency grid: an independent check of the closed form."""
    steps = 4000
    width = reference_ms / steps
    area = 0.0
    for i in range(steps):
        at = (i + 0.5) * width
        area += width * max((a for a, ms in points if ms <= at), default=0.0)
    return area


def test_the_front_keeps_only_points_nothing_beats_on_both():
    points = [(0.30, 0.5), (0.20, 0.6), (0.40, 0.7), (0.35, 0.2), (0.40, 0.9)]
    assert accuracy_latency_front(points) == [(0.35, 0.2), (0.40, 0.7)]


def test_expected_improvement_is_the_hypervolume_gain_when_accuracy_is_known():
    front = [(0.30, 0.5), (0.40, 0.8)]
    assert expected_improvement(front, latency_ms=0.3, mean=0.3, spread=0.0, reference_ms=1.0) == pytest.approx(0.06)
    assert expected_improvement(front, latency_ms=0.6, mean=0.3, spread=0.0, reference_ms=1.0) == 0.0  # dominated
    assert expected_improvement(front, latency_ms=0.6, mean=0.5, spread=0.0, reference_ms=1.0) == pytest.approx(
        0.2 * 0.2 + 0.2 * 0.1)
    assert expected_improvement(front, latency_ms=1.2, mean=0.9, spread=0.0, reference_ms=1.0) == 0.0  # past it
    for latency_ms, accuracy in [(0.1, 0.2), (0.55, 0.35), (0.9, 0.6)]:
        gain = _hypervolume(front + [(accuracy, latency_ms)], 1.0) - _hypervolume(front, 1.0)
        assert expected_improvement(front, latency_ms=latency_ms, mean=accuracy, spread=0.0,
                                    reference_ms=1.0) == pytest.approx(gain, abs=1e-3)


def test_expected_improvement_averages_the_gain_over_uncertain_accuracy():
    front = [(0.30, 0.5), (0.40, 0.8)]
    rng = random.Random(0)
    base = _hypervolume(front, 1.0)
    draws = [rng.gauss(0.32, 0.05) for _ in range(400)]
    sampled = sum(_hypervolume(front + [(a, 0.4)], 1.0) - base for a in draws) / len(draws)
    closed = expected_improvement(front, latency_ms=0.4, mean=0.32, spread=0.05, reference_ms=1.0)
    assert closed == pytest.approx(sampled, rel=0.1)
    # a point expected to sit on the front still gains through the chance of landing above it
    assert expected_improvement(front, latency_ms=0.6, mean=0.3, spread=0.05, reference_ms=1.0) > 0.0


def _synthetic_accuracy(space, params):
    """An accuracy that grows with size, as trained networks' do, with a little per-network noise."""
    candidate = candidate_from_params(space, params, num_classes=10)
    macs = sum(c.cout * c.cin // c.groups * c.kernel ** 2 for c in candidate.netspec().convs())
    return 0.2 + 0.05 * math.log(macs) + random.Random(str(sorted(params.items()))).gauss(0, 0.01)


def _flat_accuracy(space, params):
    """An accuracy that does not depend on size, as a short CPU-scale supernet estimate barely does."""
    return 0.3 + random.Random(str(sorted(params.items()))).gauss(0, 0.015)


def _study(space, latency, *, sampler, budget_ms, trials, accuracy=_synthetic_accuracy):
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

    def objective(trial):
        candidate = sample_candidate(space, trial, num_classes=10)
        return accuracy(space, trial.params), latency.predict(candidate.netspec(), candidate.policy)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=trials)
    return study


def _budget(space, latency):
    """A budget a third of random candidates exceed."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    ms = sorted(latency.predict(c.netspec(), c.policy)
                for c in (sample_candidate(space, study.ask(), num_classes=10) for _ in range(200)))
    return ms[len(ms) * 2 // 3]


def test_proposals_stay_within_the_budget_and_are_new(tiny_latency):
    space, latency = tiny_latency
    budget = _budget(space, latency)
    sampler = KnownLatencySampler(space, latency, budget_ms=budget, num_classes=10, startup_trials=4, seed=0)
    trials = _study(space, latency, sampler=sampler, budget_ms=budget, trials=16).trials
    modelled = trials[4:]
    assert all(t.values[1] <= budget for t in modelled)
    keys = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(keys[4:])) == len(modelled) and not set(keys[4:]) & set(keys[:4])
    # random proposals at the same budget do cross it: the check above is not vacuous
    random_trials = _study(space, latency, sampler=optuna.samplers.RandomSampler(seed=0), budget_ms=budget,
                           trials=16).trials
    assert any(t.values[1] > budget for t in random_trials)


def test_it_finds_a_larger_hypervolume_than_random_search_at_equal_trials(tiny_latency):
    space, latency = tiny_latency
    budget = _budget(space, latency)
    gains = []
    for seed in range(4):
        volumes = []
        for sampler in (KnownLatencySampler(space, latency, budget_ms=budget, num_classes=10, startup_trials=4,
                                            seed=seed), optuna.samplers.RandomSampler(seed=seed)):
            study = _study(space, latency, sampler=sampler, budget_ms=budget, trials=12)
            volumes.append(_hypervolume([tuple(t.values) for t in study.trials], budget))
        gains.append(volumes[0] / volumes[1] - 1)
    assert sum(gains) / len(gains) > 0.05


@pytest.mark.parametrize("sampler", ["ehvi", "gp"])
def test_a_search_runs_with_each_model_based_sampler(tiny_space, runs_dir, sampler):
    options = tiny_options(tiny_space, runs_dir, sampler, trials=6, sampler=sampler, spread_start=True)
    result = run_search(options)
    study = optuna.load_study(study_name=sampler, storage=f"sqlite:///{result.run_dir / 'study.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    if sampler == "ehvi":  # it never proposes a network already tried; Optuna's GP sampler makes no such promise
        assert len({tuple(sorted(t.params.items())) for t in trials}) == 6  # past the start-up too
    assert result.best is not None and result.best.latency_ms <= options.budget_ms


def test_the_ehvi_sampler_needs_the_space_and_the_latency_model():
    from autoc.search.samplers import make_sampler

    with pytest.raises(ValueError, match="space and the latency model"):
        make_sampler(SearchOptions(budget_ms=10.0, sampler="ehvi"))


@pytest.fixture
def mbv2_latency(runs_dir):
    """The host model for the 104-parameter CIFAR space, every unit priced by the prior fitted on the
    units measured for the tiny space (nothing measured here)."""
    return prior_priced("mbv2-cifar", runs_dir, pool=200)


def test_workers_asking_at_once_get_distinct_networks(mbv2_latency):
    # four workers with the same pool (same seed) ask before any of them reports: each sees the
    # others' running trials, so none proposes a network already running, even one that differs
    # only in params that build the same network (an fp32 layer's unused bit width)
    space, latency = mbv2_latency
    budget = _budget(space, latency)
    study = _study(space, latency, sampler=optuna.samplers.RandomSampler(seed=0), budget_ms=budget, trials=12,
                   accuracy=_flat_accuracy)  # 12 random trials: 4 or more within the budget, past the start-up
    networks = []
    for _ in range(4):
        study.sampler = KnownLatencySampler(space, latency, budget_ms=budget, num_classes=10, startup_trials=4, seed=99)
        trial = study.ask()
        candidate = sample_candidate(space, trial, num_classes=10)
        assert latency.predict(candidate.netspec(), candidate.policy) <= budget
        networks.append(json.dumps(candidate.to_dict(), sort_keys=True))
    done = [json.dumps(candidate_from_params(space, t.params, num_classes=10).to_dict(), sort_keys=True)
            for t in study.trials[:12]]
    assert len(set(networks)) == 4 and not set(networks) & set(done)
