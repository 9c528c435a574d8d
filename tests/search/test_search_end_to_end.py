"""A tiny real search: SQLite storage, host latency measured with ONNX Runtime, digits, KD fine-tune."""
import json

import optuna
import pytest
import torch

import autoc
import autoc.search.stored
from autoc.cli import main
from autoc.search.driver import run_search, summary_lines
from autoc.search.results import CORRECT_ATTR, completed_records
from autoc.search.separation import decode_correct, separation_text
from autoc.search.storage import default_storage_url
from autoc.supernet import SupernetConfig
from conftest import TINY_SPACE, named, tiny_options


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # fresh runs/: measures the host profile and trains the teacher, as a first search does
    root = tmp_path_factory.mktemp("search")
    space = root / "tiny.yaml"
    space.write_text(TINY_SPACE)
    options = tiny_options(space, root / "runs", "t", trials=4)
    return options, run_search(options)


def test_search_stores_trials_and_writes_a_rebuildable_policy(tiny):
    options, result = tiny
    assert result.trials_total == 4
    assert result.best is not None and result.policy_path.is_file()
    assert all(r.latency_ms <= options.budget_ms for r in result.pareto)
    data = json.loads(result.policy_path.read_text())
    assert data["schema"] == "autoc.policy/2" and data["trial"] == result.best.number
    assert data["preprocessing"]["input_size"] == 16 and len(data["preprocessing"]["mean"]) == 3
    assert set(data["metrics"]) == {"accuracy", "latency_ms", "size_bytes", "macs", "params"}
    rebuilt = autoc.load_policy(result.policy_path).build_model().eval()
    state = torch.load(options.storage.runs_dir / "t" / "best_weights.pt", weights_only=True)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in state.items()}
    x = torch.randn(2, 3, 16, 16)
    again = autoc.load_policy(result.policy_path).build_model().eval()
    torch.testing.assert_close(rebuilt(x), again(x))


def test_each_trained_trial_stores_its_per_image_results_and_the_summary_weighs_them(tiny):
    options, result = tiny
    study = optuna.load_study(study_name="t", storage=default_storage_url(options.storage.runs_dir / "t"))
    trained = [t for t in study.trials if t.user_attrs.get("feasible")]
    assert len(trained) >= 2
    for trial in trained:
        bits = decode_correct(trial.user_attrs[CORRECT_ATTR])
        assert bits.size == options.max_val  # every validation image, in one order for all trials
        assert bits.mean() == pytest.approx(trial.values[0], abs=1e-6)  # the estimate is their mean
    records = completed_records(study, budget_ms=options.budget_ms)
    # the top trials (here all four) estimated again with the next training seed: the seed noise is in the line
    assert study.user_attrs["estimate_rerun"]["training_seed"] == options.seed + 1
    assert sorted(r.number for r in records if r.rerun is not None) == sorted(t.number for t in trained)[:4]
    assert len(list((options.storage.runs_dir / "cache").glob("teacher-*.pt"))) == 2  # the second teacher, cached
    assert result.separation == separation_text(result.best, records, run_dir=options.storage.runs_dir / "t") is not None
    assert "training seeds" in result.separation and "not measured" not in result.separation
    assert result.separation in summary_lines(result, budget_ms=options.budget_ms)


def test_resume_counts_trials_across_runs(tiny):
    options, _ = tiny
    from dataclasses import replace

    result = run_search(replace(options, trials=5))
    assert result.trials_total == 5 and result.trials_this_run == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--budget-ms", "0"], "argument --budget-ms: takes a finite number > 0, e.g. 20"),
        (["--budget-ms", "0.0001"], "its candidates predict"),
        (["--budget-ms", "20", "--space", "no-such-space"], "no-such-space"),
        (["--budget-ms", "20", "--dataset", "mnist"], "mnist"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny, argv, message, capsys):
    options, _ = tiny
    space = ["--space", options.space] if "--space" not in argv else []
    try:
        code = main(["search", *argv, *space, "--device", options.device, "--runs-dir", str(options.storage.runs_dir),
                     "--no-progress"])
    except SystemExit as exited:  # refused while parsing the arguments
        code = exited.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1


def test_study_with_another_space_refuses_to_resume(tiny, tmp_path, capsys):
    options, _ = tiny
    other = tmp_path / "other.yaml"
    other.write_text(TINY_SPACE.replace("kernel: [3, 5]", "kernel: [3, 7]"))
    before = (options.storage.runs_dir / "t" / "study.db").read_bytes()
    code = main(["search", "--budget-ms", "50", "--device", "host", "--space", str(other), "--study", "t",
                 "--runs-dir", str(options.storage.runs_dir), "--no-progress"])
    assert code == 2 and "created with space" in capsys.readouterr().err
    assert (options.storage.runs_dir / "t" / "study.db").read_bytes() == before


def test_resume_flag_repeats_the_stored_command_with_more_trials(tiny):
    options, _ = tiny
    run_dir = options.storage.runs_dir / "t"
    done = len(autoc.search.stored.open_stored_run(run_dir).records())
    assert main(["search", "--resume", str(run_dir), "--trials", str(done + 1), "--no-progress",
                 "--cpus-per-worker", "1"]) == 0
    stored = autoc.search.stored.open_stored_run(run_dir)
    assert len(stored.records()) == done + 1
    assert stored.run_options["trials"] == done + 1 and stored.run_options["finetune_steps"] == 3  # kept from the first run


def test_resume_with_other_data_refuses_and_leaves_the_study_alone(tiny, capsys):
    options, _ = tiny
    db = options.storage.runs_dir / "t" / "study.db"
    before = db.read_bytes()
    code = main(["search", "--resume", str(db.parent), "--max-train", "150", "--no-progress"])
    assert code == 2 and "created with dataset" in capsys.readouterr().err
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--heartbeat-interval", "10", "--grace-period", "5"], "--grace-period (5) must exceed --heartbeat-interval (10)"),
        (["--workers", "0"], "argument --workers: takes a whole number >= 1"),
        (["--ray-address", "127.0.0.1:1", "--workers", "2"], "cannot connect to the Ray cluster"),
    ],
)
def test_bad_worker_options_exit_2(tiny, argv, message, capsys):
    options, _ = tiny
    try:
        code = main(["search", "--budget-ms", "50", "--device", "host", "--space", options.space,
                     "--runs-dir", str(options.storage.runs_dir), "--study", "t", "--no-progress", *argv])
    except SystemExit as exited:  # refused while parsing the arguments
        code = exited.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_energy_budget_is_a_constraint_and_over_budget_candidates_are_not_trained(tiny, tmp_path):
    """--budget-mj: trials over the energy estimate are infeasible and never trained; the
    budget is stored in the study's identity and an impossible one is refused up front."""
    import optuna

    from autoc.search.objective import ENERGY_CONSTRAINT

    options, result = tiny
    study = autoc.search.stored.open_stored_run(options.storage.runs_dir / "t").study
    energies = sorted(t.user_attrs["energy_mj"] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    assert energies and all(e > 0 for e in energies)
    budget = energies[len(energies) // 2]  # about half of what was sampled fits
    energy_run = run_search(named(options, "energy", budget_mj=budget, trials=6))
    stored = autoc.search.stored.open_stored_run(options.storage.runs_dir / "energy")
    assert stored.identity["budget_mj"] == repr(budget)
    trials = stored.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    for trial in trials:
        over = trial.user_attrs["energy_mj"] > budget
        constraint = trial.system_attrs[f"constraints:{ENERGY_CONSTRAINT}"]
        assert (constraint > 0) == over
        if over:
            assert trial.user_attrs["feasible"] is False and "weights" not in trial.user_attrs
    assert all(r.feasible is False or stored.study.trials[r.number].user_attrs["energy_mj"] <= budget
               for r in energy_run.pareto)
    code = main(["search", "--budget-ms", "50", "--budget-mj", "1e-9", "--device", "host", "--space", options.space,
                 "--runs-dir", str(options.storage.runs_dir), "--study", "energy2", "--no-progress"])
    assert code == 2


def test_search_with_a_supernet_trains_it_once_and_inherits_from_it(tiny):
    """--supernet-steps: the search trains the supernet when missing (cached under runs/cache),
    candidates are extracted from it, and a second search reuses the cache."""
    options, _ = tiny
    cache = options.storage.runs_dir / "cache"
    before = set(cache.glob("supernet-*.pt"))
    first = run_search(named(options, "sn", supernet=SupernetConfig(steps=2), trials=2))
    made = set(cache.glob("supernet-*.pt")) - before
    assert len(made) == 2 and first.trials_total == 2  # the search's, and the next seed's for the seed noise
    stored = autoc.search.stored.open_stored_run(options.storage.runs_dir / "sn")
    assert stored.identity["supernet_steps"] == "2"
    assert all(0.0 <= r.accuracy <= 1.0 for r in first.pareto) and first.best is not None
    mtimes = {path: path.stat().st_mtime_ns for path in made}
    run_search(named(options, "sn", supernet=SupernetConfig(steps=2), trials=3))
    assert {path: path.stat().st_mtime_ns for path in made} == mtimes  # loaded, not retrained
    assert set(cache.glob("supernet-*.pt")) - before == made
    # the weight source is part of the study's identity
    assert main(["search", "--budget-ms", "50", "--device", "host", "--space", options.space, "--study", "sn",
                 "--supernet-steps", "3",
                 "--runs-dir", str(options.storage.runs_dir), "--max-train", "200", "--max-val", "100", "--no-progress"]) == 2


def test_search_finds_the_supernet_that_autoc_supernet_train_made_with_its_recipe(tiny):
    """A supernet trained alone with a non-default recipe is the one a search given the same recipe
    inherits from (no second training); the recipe joins the study's identity and survives --resume."""
    options, _ = tiny
    cache = options.storage.runs_dir / "cache"
    common = ["--space", options.space, "--runs-dir", str(options.storage.runs_dir), "--max-train", "200", "--max-val", "100"]
    before = set(cache.glob("supernet-*.pt"))
    assert main(["supernet", "train", *common, "--steps", "2", "--largest-steps", "1", "--lr", "0.02",
                 "--random-subnets", "1", "--no-progress"]) == 0
    trained = set(cache.glob("supernet-*.pt")) - before
    assert len(trained) == 1
    recipe = ["--supernet-steps", "2", "--supernet-largest-steps", "1", "--supernet-lr", "0.02",
              "--supernet-random-subnets", "1", "--noise-trials", "0"]  # no second supernet for the seed noise
    assert main(["search", "--budget-ms", "50", "--device", "host", *common, "--study", "recipe", "--trials", "1", *recipe,
                 "--finetune-steps", "2", "--no-progress"]) == 0
    assert set(cache.glob("supernet-*.pt")) - before == trained  # inherited from it, nothing retrained
    stored = autoc.search.stored.open_stored_run(options.storage.runs_dir / "recipe")
    assert "largest_steps=1" in stored.identity["supernet_recipe"] and "lr=0.02" in stored.identity["supernet_recipe"]
    assert main(["search", "--resume", str(options.storage.runs_dir / "recipe"), "--trials", "2", "--no-progress"]) == 0
    assert set(cache.glob("supernet-*.pt")) - before == trained
    assert len(autoc.search.stored.open_stored_run(options.storage.runs_dir / "recipe").study.trials) == 2
    # the same study with another recipe is another weight source: refused
    assert main(["search", "--budget-ms", "50", "--device", "host", *common, "--study", "recipe", "--trials", "3",
                 "--supernet-steps", "2", "--no-progress"]) == 2
