"""`autoc search` maps its flags onto SearchOptions' fields: a recipe file (--config) sets any
field and flags override it, a bad file is one line with exit 2, and an error the library raises
naming a field reaches the user naming the flag."""
import logging
from pathlib import Path

import pytest

import autoc.search.driver
from autoc.cli import build_parser, main
from autoc.commands._flags import with_flags
from autoc.search.driver import SearchResult
from autoc.supernet import SupernetConfig


@pytest.fixture
def searched(monkeypatch):
    """The options `autoc search` would run with; no search runs."""
    seen = []

    def run_search(options):
        seen.append(options)
        return SearchResult(study="s", run_dir=Path("r"), policy_path=None, best=None, pareto=[], trials_total=0,
                            trials_this_run=0, feasible=0, teacher_accuracy=0.0, wall_seconds=0.0)

    monkeypatch.setattr(autoc.search.driver, "run_search", run_search)
    return seen


def test_a_recipe_file_sets_options_and_a_flag_overrides_it(tmp_path, searched):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("budget_ms: 15\ntrials: 60\nsupernet: {steps: 150, lr: 0.02}\nworkers: {grace_period_s: 90}\n"
                      "finalists: {count: auto}\n")
    assert main(["search", "--config", str(recipe), "--trials", "12", "--supernet-random-subnets", "1"]) == 0
    options = searched[0]
    assert (options.budget_ms, options.trials) == (15.0, 12)
    assert options.supernet == SupernetConfig(steps=150, lr=0.02, random_subnets=1)
    assert options.workers.grace_period_s == 90 and options.finalists.count == "auto"


def test_flags_left_out_take_the_dataclass_defaults(searched):
    assert main(["search", "--budget-ms", "20"]) == 0
    options = searched[0]
    assert options.supernet is None and options.workers.count == 1 and options.finalists.steps == 300
    assert main(["search", "--budget-ms", "20", "--supernet-steps", "0", "--no-progress"]) == 0
    assert searched[1].supernet is None and searched[1].progress is False


@pytest.mark.parametrize("text, message", [
    ("budget_ms: 20\nwrokers: 2\n", "unknown option 'wrokers': use one of"),
    ("budget_ms: 20\nsupernet: {stpes: 5}\n", "unknown option 'supernet.stpes': use one of"),
    ("budget_ms: 20\ntrials: many\n", "option 'trials' takes int, got 'many' (str)"),
    ("budget_ms: 20\nworkers: {count: 0}\n", "workers.count must be a whole number >= 1, got 0"),
    ("budget_ms: [20\n", "is not valid YAML at line 2"),
    ("- 20\n", "must be a mapping of option names to values"),
])
def test_a_bad_recipe_file_is_one_line_exit_2_naming_the_key(tmp_path, capsys, searched, text, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    assert main(["search", "--config", str(recipe), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"autoc: error: recipe file {recipe}") and message in err and len(err.splitlines()) == 1
    assert searched == [] and not (tmp_path / "runs").exists()


def test_a_missing_recipe_file_is_one_line(tmp_path, capsys, searched):
    assert main(["search", "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read recipe file" in capsys.readouterr().err and searched == []


@pytest.mark.parametrize("argv, message", [
    (["--heartbeat-interval", "10", "--grace-period", "5"],
     "--grace-period (5) must exceed --heartbeat-interval (10), or live trials would be taken for dead ones: "
     "set --grace-period to twice the interval or more"),
    (["--supernet-lr", "0.1"], "--supernet-lr changes the supernet recipe, but no supernet is trained: "
                               "set --supernet-steps too"),
    (["--supernet-steps", "5", "--supernet-sampling", "spos"],
     "sampling 'spos' is unknown: set --supernet-sampling to one of sandwich, uniform"),
    (["--sampler", "annealing"], "--sampler 'annealing' is unknown: set --sampler to one of"),
])
def test_an_invalid_option_is_reported_with_its_flag(capsys, searched, argv, message):
    assert main(["search", "--budget-ms", "20", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autoc: error: ") and message in err and len(err.splitlines()) == 1
    assert searched == []


def test_only_the_fields_an_error_names_become_flags():
    flags = {"trials": "--trials", "workers.count": "--workers"}
    assert with_flags("trials 1 is below 2: set trials to 12", ("trials",), flags) == \
        "--trials 1 is below 2: set --trials to 12"
    assert with_flags("the space's trials", (), flags) == "the space's trials"  # not named by the error: prose
    assert with_flags("the 'tiny-trials' study", ("trials",), flags) == "the 'tiny-trials' study"
    assert with_flags("set workers.count to 2", ("workers.count",), flags) == "set --workers to 2"
    assert with_flags("runs/trials/x.db: set trials", ("trials",), flags) == "runs/trials/x.db: set --trials"


def test_the_library_logs_and_the_command_shows_its_info_lines_on_stderr(capsys, searched):
    assert main(["search", "--budget-ms", "20"]) == 0  # configures the command's logging
    logging.getLogger("autoc.search.driver").info("estimate noise: a line")
    logging.getLogger("autoc.supernet.cache").warning("supernet cache x is unreadable; retraining it")
    captured = capsys.readouterr()
    assert "estimate noise: a line\nautoc: supernet cache x is unreadable; retraining it\n" in captured.err
    assert "estimate noise" not in captured.out


@pytest.mark.parametrize("argv, fields", [
    (["show", "runs/x"], {"storage.url": "--storage", "storage.study": "--study"}),
    (["report", "runs/x"], {"storage.url": "--storage", "storage.study": "--study", "out_dir": "--out",
                            "force": "--force"}),
    (["export", "runs/x"], {"storage.url": "--storage", "storage.study": "--study", "output": "--output",
                            "force": "--force", "format": "--format"}),
    (["calibrate", "--device", "pi"], {"pack_dir": "--pack", "fit": "--fit"}),
    (["supernet", "train"], {"cache_dir": "--runs-dir"}),
    (["search"], {"storage.url": "--storage", "storage.study": "--study", "cache_dir": "--runs-dir"}),
])
def test_each_command_shows_its_flag_for_the_fields_its_library_errors_name(argv, fields):
    flags = build_parser().parse_args(argv).option_flags
    assert {field: flags.get(field) for field in fields} == fields
