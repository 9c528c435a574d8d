"""A budget sweep (`autoc search --budget-ms 15.35 18 20`): one study, one chosen model per budget.

On the default target (fbnet-cifar on pixel3, its shipped profile: latencies that repeat), so the
budgets separate the sampled candidates; a tiny recipe keeps it to seconds. The random sampler
draws the same candidates whatever their estimates, so the budgets keep separating them.
"""
import json

import optuna
import pytest

from autoc.cli import main
from autoc.errors import OptionError
from autoc.search.options import SearchOptions
from autoc.search.resume import resume_options
from autoc.search.storage import default_storage_url

BUDGETS = (15.35, 18.0, 20.0)
RECIPE = ["--trials", "6", "--teacher-steps", "8", "--finetune-steps", "2", "--max-train", "64", "--max-val", "48",
          "--noise-trials", "0", "--cpus-per-worker", "1", "--no-progress", "--sampler", "random"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    runs = tmp_path_factory.mktemp("sweep") / "runs"
    code = main(["search", "--budget-ms", *(f"{b:g}" for b in BUDGETS), *RECIPE, "--runs-dir", str(runs),
                 "--study", "sweep"])
    study = optuna.load_study(study_name="sweep", storage=default_storage_url(runs / "sweep"))
    return code, runs / "sweep", study


def _expected(study: optuna.Study, budget: float):
    """The most accurate trained trial within ``budget`` (ties: faster, then smaller), from Optuna's own record."""
    trained = [t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
               if t.user_attrs.get("feasible") and t.user_attrs["latency_ms"] <= budget]
    if not trained:
        return None
    return min(trained, key=lambda t: (-t.values[0], t.user_attrs["latency_ms"], t.user_attrs["size_bytes"]))


def test_a_sweep_writes_one_policy_per_budget_each_the_most_accurate_trained_trial_within_it(sweep):
    code, run_dir, study = sweep
    assert code == 0
    chosen_somewhere = 0
    for budget in BUDGETS:
        path = run_dir / f"best_policy-{budget:g}ms.json"
        expected = _expected(study, budget)
        if expected is None:
            assert not path.exists()
            continue
        chosen_somewhere += 1
        data = json.loads(path.read_text())
        assert data["trial"] == expected.number
        assert data["metrics"]["latency_ms"] <= budget
        assert data["metrics"]["accuracy"] == pytest.approx(expected.values[0])
        assert (run_dir / data["weights"]).is_file() and data["weights"] == f"best_weights-{budget:g}ms.pt"
    assert chosen_somewhere == len(BUDGETS)  # each budget has its own choice to check
    # the largest budget's choice keeps its unchanged name too
    largest = json.loads((run_dir / "best_policy.json").read_text())
    assert largest["trial"] == json.loads((run_dir / f"best_policy-{max(BUDGETS):g}ms.json").read_text())["trial"]


def test_trials_over_the_largest_budget_are_priced_and_never_trained(sweep):
    _, _, study = sweep
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    over = [t for t in trials if t.user_attrs["latency_ms"] > max(BUDGETS)]
    under = [t for t in trials if t.user_attrs["latency_ms"] <= max(BUDGETS)]
    assert over and under
    assert all(not t.user_attrs["feasible"] and "weights" not in t.user_attrs for t in over)
    assert all(t.user_attrs["feasible"] and "weights" in t.user_attrs for t in under)  # trained once, for every budget


def test_the_summary_and_show_print_one_row_per_budget(sweep, capsys):
    _, run_dir, study = sweep
    assert main(["show", str(run_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("per budget (chosen within each; accuracy estimate, predicted latency, size):")
    rows = out[start + 2:start + 2 + len(BUDGETS)]
    for budget, row in zip(BUDGETS, rows):
        expected = _expected(study, budget)
        cells = row.split()
        assert float(cells[0]) == budget
        if expected is None:
            assert cells[1:3] == ["none", "fits"]
        else:
            assert int(cells[1]) == expected.number and cells[-1] == f"best_policy-{budget:g}ms.json"


def test_resuming_a_sweep_keeps_its_budgets(sweep):
    _, run_dir, _ = sweep
    options = resume_options(run_dir, given={})
    assert (options.budget_ms, options.budgets_ms) == (max(BUDGETS), BUDGETS)


@pytest.mark.parametrize("budgets, message", [
    (["12", "0"], "argument --budget-ms: takes a finite number > 0, e.g. 20"),
    (["12", "-3"], "argument --budget-ms: takes a finite number > 0, e.g. 20"),
    (["2", "20"], "no candidate of space 'fbnet-cifar' can meet 2 ms on pixel3"),
])
def test_a_bad_budget_in_a_sweep_is_one_line_and_exit_2_with_nothing_stored(tmp_path, capsys, budgets, message):
    runs = tmp_path / "runs"
    try:
        code = main(["search", "--budget-ms", *budgets, *RECIPE, "--runs-dir", str(runs), "--study", "bad"])
    except SystemExit as exited:  # refused while parsing the arguments
        code = exited.code
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2 and len(err) == 1 and message in err[0], err
    if "can meet" in message:
        assert "raise every budget of --budget-ms to at least 2.812" in err[0]
    assert not (runs / "bad").exists()


def test_a_sweeps_budgets_are_checked_each_naming_the_field():
    with pytest.raises(OptionError, match=r"^budgets_ms must be a finite number > 0, got 0") as error:
        SearchOptions(budget_ms=20, budgets_ms=(0, 12))
    assert error.value.fields == ("budgets_ms",)
    with pytest.raises(OptionError, match="budgets_ms holds 30 ms, above budget_ms 20: .* set budget_ms to 30"):
        SearchOptions(budget_ms=20, budgets_ms=(12, 30))
    one = SearchOptions(budget_ms=20, budgets_ms=(20, 20))
    assert (one.budgets_ms, one.sweep_ms) == ((), (20.0,))  # one budget: exactly the search without a sweep
    assert SearchOptions(budget_ms=20, budgets_ms=(12,)).sweep_ms == (12.0, 20.0)
