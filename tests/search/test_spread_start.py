"""The search's start-up trials: spread over the predicted-latency range within the budget."""
import optuna
import pytest

from autoc.latency.device import open_latency_model
from autoc.search.driver import SearchOptions, run_search
from autoc.search.samplers import startup_trials
from autoc.search.startup import enqueue_start, spread_start
from autoc.space import candidate_from_params, load_space, sample_candidate
from conftest import named, tiny_options


def _latencies(space, latency, params_list):
    out = []
    for params in params_list:
        candidate = candidate_from_params(space, params, num_classes=10)
        out.append(latency.predict(candidate.netspec(), candidate.policy))
    return out


def _random_latencies(space, latency, count, seed):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(count):
        candidate = sample_candidate(space, study.ask(), num_classes=10)
        out.append(latency.predict(candidate.netspec(), candidate.policy))
    return sorted(out)


def test_start_spans_the_latency_range_within_the_budget(tiny_latency):
    space, latency = tiny_latency
    pool = _random_latencies(space, latency, 500, seed=3)
    budget = pool[len(pool) * 3 // 4]  # a budget a quarter of the space exceeds
    start = spread_start(space, latency, count=5, budget_ms=budget, num_classes=10, seed=3)
    ms = _latencies(space, latency, start)
    assert len(start) == 5 and ms == sorted(ms) and max(ms) <= budget
    feasible = [m for m in pool if m <= budget]
    assert ms[0] == pytest.approx(feasible[0])  # the fastest of the pool first, the slowest within budget last
    assert ms[-1] == pytest.approx(feasible[-1])
    # spread: a random start of 5 covers less of the range, on average, than the spread one
    lows, highs = [], []
    for seed in range(20):
        sample = _random_latencies(space, latency, 5, seed=100 + seed)
        sample = [m for m in sample if m <= budget] or [budget]
        lows.append(sample[0])
        highs.append(sample[-1])
    assert ms[-1] - ms[0] > sum(h - l for h, l in zip(highs, lows)) / len(lows)


def test_start_leaves_out_over_budget_candidates_and_returns_fewer_when_few_fit(tiny_latency):
    space, latency = tiny_latency
    fastest = _random_latencies(space, latency, 500, seed=3)[0]
    start = spread_start(space, latency, count=5, budget_ms=fastest * 1.0001, num_classes=10, seed=3)
    assert 1 <= len(start) < 5 and all(m <= fastest * 1.0001 for m in _latencies(space, latency, start))
    assert spread_start(space, latency, count=5, budget_ms=fastest * 0.5, num_classes=10, seed=3) == []


def test_start_is_queued_only_in_a_study_without_trials():
    study = optuna.create_study()
    assert enqueue_start(study, [{"x": 1}, {"x": 2}]) == 2
    study.optimize(lambda trial: trial.suggest_int("x", 0, 9), n_trials=2)
    assert [t.params for t in study.trials] == [{"x": 1}, {"x": 2}]
    assert enqueue_start(study, [{"x": 3}]) == 0  # a resumed study keeps its own start
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_search_runs_the_spread_start_first_on_request_and_starts_at_random_by_default(tiny_space, runs_dir):
    options = tiny_options(tiny_space, runs_dir, "spread", trials=4, spread_start=True)
    # the start as the search will price it: after its budget check (which measures the space's
    # cheapest candidates) and before its trials measure more units, which changes later prices
    latency = open_latency_model("host", runs_dir=runs_dir, space=load_space(tiny_space), progress=False)
    for cheapest in load_space(tiny_space).minimal_candidates(num_classes=10):
        latency.predict(cheapest.netspec(), cheapest.policy)
    expected = spread_start(load_space(tiny_space), latency, count=startup_trials(options), budget_ms=options.budget_ms,
                            num_classes=10, seed=options.seed)
    result = run_search(options)
    study = optuna.load_study(study_name="spread", storage=f"sqlite:///{result.run_dir / 'study.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.params for t in trials[: len(expected)]] == expected
    assert SearchOptions(budget_ms=1.0).spread_start is False
    random_start = run_search(named(options, "random-start", spread_start=False))
    study = optuna.load_study(study_name="random-start", storage=f"sqlite:///{random_start.run_dir / 'study.db'}")
    assert [t.params for t in sorted(study.trials, key=lambda t: t.number)[: len(expected)]] != expected


def test_start_on_a_host_model_measures_nothing(tiny_space, runs_dir):
    # a fresh host profile lacks most units; pricing the 500-candidate pool must not measure them
    import json

    from autoc.latency.device import profile_path
    from autoc.latency.model import open_host_model

    space = load_space(tiny_space)
    path = profile_path("host", runs_dir=runs_dir, threads=1)
    data = json.loads(path.read_text())
    kept = dict(list(sorted(data["blocks"].items()))[: len(data["blocks"]) // 2])  # half the table forgotten
    data["blocks"] = kept
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    model = open_host_model(path, threads=1)
    start = spread_start(space, model, count=4, budget_ms=50.0, num_classes=10, seed=0)
    assert len(start) == 4
    assert path.read_bytes() == before and set(model.profile.blocks) == set(kept)


def test_a_prior_fitted_on_measured_units_recovers_their_costs():
    from autoc.latency.profile import UnitPrior

    features = [{"fp32_mmac": m, "fp32_unit": 1.0} for m in (0.5, 1.0, 2.0, 4.0)]
    prior = UnitPrior.fitted(features, [0.02 * f["fp32_mmac"] + 0.01 for f in features])
    assert prior.coefficient("fp32_mmac") == pytest.approx(0.02) and prior.coefficient("fp32_unit") == pytest.approx(0.01)
    with pytest.raises(ValueError, match="needs measured units"):
        UnitPrior.fitted([], [])


def test_a_host_model_with_none_of_the_pool_measured_starts_at_random(tiny_space, runs_dir):
    import json

    from autoc.latency.device import profile_path
    from autoc.latency.model import open_host_model

    path = profile_path("host", runs_dir=runs_dir, threads=1)
    data = json.loads(path.read_text())
    data["blocks"] = {}
    path.write_text(json.dumps(data))
    model = open_host_model(path, threads=1)
    assert spread_start(load_space(tiny_space), model, count=4, budget_ms=50.0, num_classes=10, seed=0) == []
    assert json.loads(path.read_text())["blocks"] == {}  # and nothing was measured to find that out
