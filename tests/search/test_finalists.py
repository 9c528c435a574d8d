"""The finalist stage: top estimates trained from scratch, the search choosing by that accuracy."""
import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

import autoc
from autoc.cli import main
from autoc.training.loop import accuracy
from autoc.search.context import load_inputs
from autoc.search.options import FinalistOptions
from autoc.search.driver import run_search
from autoc.evaluate.recipe import scratch_recipe
from autoc.search.finalists import ATTR_PREFIX, attr_name, pick_finalists, tied_finalists
from autoc.search.results import TrialRecord
from autoc.search.separation import encode_correct
from autoc.search.stored import open_stored_run
from conftest import TINY_FLAGS, named, tiny_options


def record(number, accuracy, *, latency=1.0, feasible=True, correct=None):
    return TrialRecord(number=number, accuracy=accuracy, latency_ms=latency, size_bytes=100, params=1, macs=1,
                       feasible=feasible, candidate={}, weights=None, correct=correct)


def scored(number, correct: np.ndarray, *, feasible=True):
    """A record whose estimate is the mean of its stored per-image results."""
    return record(number, float(correct.mean()), feasible=feasible, correct=encode_correct(correct))


def test_finalists_are_the_top_feasible_estimates():
    records = [record(0, 0.5), record(1, 0.9, feasible=False), record(2, 0.7), record(3, 0.7, latency=0.5),
               record(4, 0.6)]
    assert [r.number for r in pick_finalists(records, count=3)] == [3, 2, 4]
    assert [r.number for r in pick_finalists(records, count=10)] == [3, 2, 4, 0]


def test_auto_finalists_are_the_top_estimate_and_the_trials_it_does_not_separate_from():
    n = 1000
    top = np.arange(n) < 700
    def behind(points: int, differ: int) -> np.ndarray:  # ``points`` x 10 images fewer, on ``differ`` more images
        bits = top.copy()
        bits[np.flatnonzero(top)[: 10 * points + differ]] = False
        bits[np.flatnonzero(~top)[:differ]] = True
        return bits
    records = [scored(0, behind(1, 60)),  # 1 point behind, errs differently on ~13% of images: tied
               scored(1, top),
               scored(2, behind(3, 0)),  # 3 points behind on the same images: separated
               scored(3, behind(0, 40)),  # level, differs on 8%: tied, the closest
               scored(4, top, feasible=False),  # over budget
               record(5, 0.69)]  # no per-image results stored: not compared
    assert [r.number for r in tied_finalists(records)] == [1, 3, 0]
    assert [r.number for r in tied_finalists(records, cap=2)] == [1, 3]
    assert [r.number for r in tied_finalists([records[1], records[2]])] == [1]  # every other separated
    assert [r.number for r in tied_finalists([record(0, 0.5), record(1, 0.4)])] == [0]  # nothing to pair
    assert tied_finalists([records[4]]) == []


@pytest.fixture(scope="module")
def finished(tiny_space, tmp_path_factory, warm_runs):
    runs = tmp_path_factory.mktemp("finalists") / "runs"
    for cache in ("devices", "cache"):
        shutil.copytree(warm_runs / cache, runs / cache)
    options = tiny_options(tiny_space, runs, "f", trials=5, finalists=FinalistOptions(count=2, steps=30))
    return options, run_search(options)


def test_the_search_chooses_the_best_finalist_and_stores_every_result(finished):
    options, result = finished
    assert len(result.finalists) == 2
    records = open_stored_run(options.run_directory()).records()
    estimates = {r.number: r.accuracy for r in records}
    assert set(result.finalists) == {r.number for r in pick_finalists(records, count=2)}
    best = max(result.finalists.values(), key=lambda f: f.accuracy)
    assert result.best.number == best.trial
    assert result.best.accuracy == best.accuracy and result.best.estimate == estimates[best.trial]
    study = open_stored_run(options.run_directory()).study
    stored = {k: v for k, v in study.user_attrs.items() if k.startswith(ATTR_PREFIX)}
    recipe = next(iter(result.finalists.values())).recipe
    assert set(stored) == {f"{ATTR_PREFIX}{n}:{recipe}" for n in result.finalists}


def test_the_policy_file_carries_the_finalist_weights_and_accuracy(finished):
    options, result = finished
    policy = json.loads(result.policy_path.read_text())
    assert policy["trial"] == result.best.number and policy["metrics"]["accuracy"] == result.best.accuracy
    # the exported weights are the finalist's: they reproduce its accuracy on the validation split
    model = autoc.load_policy(result.policy_path).build_model()
    data = load_inputs(options).data
    assert accuracy(model, data.val_x, data.val_y) == pytest.approx(result.best.accuracy, abs=1e-6)
    # export and report pick the same trial from the storage alone
    assert open_stored_run(options.run_directory()).chosen(open_stored_run(options.run_directory()).records()).number \
        == result.best.number


def test_show_names_the_chosen_finalist_and_its_estimate(finished, capsys):
    options, result = finished
    assert main(["show", str(options.run_directory())]) == 0
    out = capsys.readouterr().out
    best = result.best
    assert f"trial {best.number}, accuracy {best.accuracy:.4f} (finalist; estimate {best.estimate:.4f})" in out


def test_a_resumed_search_trains_no_finalist_twice(finished):
    options, result = finished
    weights = {n: f.weights for n, f in result.finalists.items()}
    stamps = {n: os.stat(path).st_mtime_ns for n, path in weights.items()}
    again = run_search(options)
    assert again.finalists == result.finalists
    assert {n: os.stat(path).st_mtime_ns for n, path in weights.items()} == stamps
    # another recipe is another result: trained anew, the first ones kept
    longer = run_search(replace(options, finalists=replace(options.finalists, steps=31)))
    assert set(longer.finalists) == set(result.finalists)
    assert all(longer.finalists[n].recipe != result.finalists[n].recipe for n in result.finalists)
    assert {n: os.stat(path).st_mtime_ns for n, path in weights.items()} == stamps
    # and back to the first recipe: its results are still stored, nothing is trained
    back = run_search(options)
    assert back.finalists == result.finalists
    assert {n: os.stat(path).st_mtime_ns for n, path in weights.items()} == stamps


def test_a_finalist_whose_weights_are_gone_or_whose_entry_is_unreadable_is_trained_again(finished):
    options, result = finished
    options = replace(options, finalists=replace(options.finalists, steps=31))  # the recipe the resume test left stored
    study = open_stored_run(options.run_directory()).study
    first, second = sorted(n for n in result.finalists)
    recipe = scratch_recipe(steps=31, batch_size=options.batch_size, seed=options.seed, augment=False)
    entry = dict(study.user_attrs[attr_name(first, recipe)])
    assert entry["weights"].startswith("finalists/")  # relative to the run directory
    os.remove(options.run_directory() / entry["weights"])
    study.set_user_attr(attr_name(second, recipe), {"recipe": entry["recipe"], "trial": "not a number"})
    again = run_search(options)
    assert set(again.finalists) == {first, second}
    assert os.path.isfile(again.finalists[first].weights) and os.path.isfile(again.finalists[second].weights)
    study = open_stored_run(options.run_directory()).study  # both entries rewritten by the retraining
    assert study.user_attrs[attr_name(second, recipe)]["trial"] == second
    assert study.user_attrs[attr_name(first, recipe)]["weights"] == entry["weights"]


def test_auto_trains_exactly_the_trials_the_estimate_does_not_separate(finished):
    options, result = finished
    records = open_stored_run(options.run_directory()).records()
    expected = [r.number for r in tied_finalists(records)]
    assert len(expected) > 1, "the tiny study's estimates (100 images) should tie"
    auto = run_search(replace(options, finalists=FinalistOptions(count="auto", steps=32)))
    assert set(auto.finalists) == set(expected)
    assert auto.best.number == max(auto.finalists.values(), key=lambda f: f.accuracy).trial


def test_auto_with_nothing_to_weigh_trains_none_and_says_so(finished):
    options, _ = finished
    alone = run_search(named(options, "alone", trials=1, finalists=replace(options.finalists, count="auto")))
    assert alone.finalists == {} and alone.best.estimate is None  # the estimate chose
    assert alone.separation.startswith("estimate noise: no other feasible trial stores per-image results")


def test_bad_finalist_options_exit_2_before_anything_is_stored(tiny_space, runs_dir, capsys):
    with pytest.raises(SystemExit) as exited:  # refused while parsing the arguments
        main(["search", *TINY_FLAGS, "--space", str(tiny_space), "--runs-dir", str(runs_dir), "--study", "bad",
              "--finalists", "-1"])
    code, err = exited.value.code, capsys.readouterr().err
    assert code == 2 and "--finalists" in err and len(err.strip().splitlines()) == 1
    assert not (runs_dir / "bad").exists()

