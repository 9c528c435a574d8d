"""SearchOptions and its groups: each group refuses a bad field naming it, plain data (a recipe,
the options stored with a study) is read with its keys and types checked, and a study's stored
options resume it, whether stored as groups or as the flat keys of earlier studies."""
from dataclasses import replace

import optuna
import pytest

from autoc.errors import OptionError
from autoc.search.options import (FinalistOptions, SearchOptions, StorageOptions, WorkerOptions, field_default,
                                  stored_record, stored_to_dict)
from autoc.search.resume import merge_options, resume_options
from autoc.search.samplers import make_sampler
from autoc.search.storage import IDENTITY_PREFIX, default_storage_url, open_storage
from autoc.supernet import SupernetConfig
from conftest import tiny_options  # at import: by the time a test runs, "conftest" may be another folder's


@pytest.mark.parametrize("make, field", [
    (lambda: WorkerOptions(count=0), "count"),
    (lambda: WorkerOptions(cpus=0), "cpus"),
    (lambda: WorkerOptions(heartbeat_interval_s=10, grace_period_s=5), "grace_period_s"),
    (lambda: FinalistOptions(count="many"), "count"),
    (lambda: FinalistOptions(steps=0), "steps"),
    (lambda: FinalistOptions(noise_trials=-1), "noise_trials"),
    (lambda: SupernetConfig(lr=0.05, steps=0), "steps"),
    (lambda: SearchOptions(budget_ms=0.0), "budget_ms"),
    (lambda: SearchOptions(budget_ms=20.0, trials=0), "trials"),
    (lambda: SearchOptions(budget_ms=20.0, sampler="annealing"), "sampler"),
])
def test_a_group_refuses_a_bad_field_in_one_line_naming_the_field(make, field):
    with pytest.raises(OptionError) as refused:
        make()
    message = str(refused.value)
    assert refused.value.fields[0] == field and message.startswith(field if field != "sampler" else "sampler '")
    assert f"set {field}" in message and "--" not in message and len(message.splitlines()) == 1


def test_from_dict_builds_the_groups_and_names_a_bad_key_with_its_group():
    options = SearchOptions.from_dict({"budget_ms": 20, "workers": {"count": 2}, "supernet": {"steps": 150, "lr": 0.1},
                                       "finalists": {"count": "auto"}, "storage": {"runs_dir": "elsewhere"}})
    assert options.workers == WorkerOptions(count=2) and options.finalists.count == "auto"
    assert options.supernet.lr == 0.1 and options.storage.runs_dir.name == "elsewhere"
    assert isinstance(options.budget_ms, float)
    with pytest.raises(OptionError, match=r"unknown option 'workers.cuont': use one of workers.count,"):
        SearchOptions.from_dict({"budget_ms": 20, "workers": {"cuont": 2}})
    with pytest.raises(OptionError, match=r"option 'trials' takes int, got '30' \(str\)"):
        SearchOptions.from_dict({"budget_ms": 20, "trials": "30"})
    with pytest.raises(OptionError, match=r"^workers.count must be a whole number >= 1, got 0: set workers.count"):
        SearchOptions.from_dict({"budget_ms": 20, "workers": {"count": 0}})
    with pytest.raises(OptionError, match="unknown option 'supernet.seed'"):  # the search's seed is the supernet's
        SearchOptions.from_dict({"budget_ms": 20, "supernet": {"steps": 5, "seed": 3}})


def test_the_supernet_trains_with_the_search_seed_and_batch_size():
    options = SearchOptions(budget_ms=20.0, seed=4, batch_size=16, supernet=SupernetConfig(steps=10))
    assert (options.supernet.seed, options.supernet.batch_size, options.supernet.steps) == (4, 16, 10)


def test_to_dict_reads_back_as_the_same_options():
    options = SearchOptions(budget_ms=20.0, trials=7, supernet=SupernetConfig(steps=10, lr=0.02),
                            finalists=FinalistOptions(count=3), workers=WorkerOptions(count=2, cpus=1),
                            storage=StorageOptions(study="s"))
    assert SearchOptions.from_dict(options.to_dict()) == options


def test_each_default_is_the_dataclass_field_default():
    assert field_default("supernet.lr") == SupernetConfig().lr
    assert field_default("workers.grace_period_s") == WorkerOptions().grace_period_s
    assert field_default("finalists.steps") == FinalistOptions().steps
    assert field_default("teacher_steps") == SearchOptions(budget_ms=1.0).teacher_steps


def test_a_supernet_recipe_change_without_a_supernet_is_refused():
    with pytest.raises(OptionError, match="supernet.lr changes the supernet recipe, but no supernet is trained"):
        merge_options({"supernet": None}, {"supernet": {"lr": 0.1}})
    assert merge_options({"supernet": {"steps": 5, "lr": 0.1}}, {"supernet": {"lr": 0.2}})["supernet"] == \
        {"steps": 5, "lr": 0.2}


# How `autoc search` stored its options before they were grouped (a study of that code).
FLAT = {"dataset": "digits", "data_dir": None, "seed": 2, "max_train": 200, "max_val": 100, "space": "mbv2-cifar",
        "runs_dir": "/somewhere/runs", "trials": 6, "sampler": "random", "finetune_steps": 3, "teacher_steps": 5,
        "supernet_steps": 40, "supernet_largest_steps": 10, "supernet_lr": 0.02, "supernet_random_subnets": 1,
        "supernet_augment": False, "supernet_sort_channels": False, "supernet_progressive": True,
        "supernet_final_phase_share": 0.5, "supernet_sampling": "sandwich", "finalists": "auto", "finalist_steps": 50,
        "finalist_augment": True, "noise_trials": 2, "batch_size": 16, "device": "host", "threads": 1}


def _stored_study(run_dir, run_options, *, sampler=None):
    run_dir.mkdir(parents=True)
    study = optuna.create_study(study_name=run_dir.name, storage=open_storage(default_storage_url(run_dir)),
                                directions=["maximize", "minimize", "minimize"])
    for key, value in {"space": "mbv2-cifar:abc", "dataset": "x", "device": "host", "budget_ms": "20.0"}.items():
        study.set_user_attr(IDENTITY_PREFIX + key, value)
    study.set_user_attr("autoc_run_options", run_options)
    return study


def test_a_study_stored_with_flat_options_resumes_with_the_same_options(tmp_path):
    _stored_study(tmp_path / "runs" / "old", FLAT)
    options = resume_options(tmp_path / "runs" / "old", given={"trials": 8})
    assert options.supernet == SupernetConfig(steps=40, largest_steps=10, lr=0.02, random_subnets=1, progressive=True,
                                              final_phase_share=0.5, seed=2, batch_size=16)
    assert options.finalists == FinalistOptions(count="auto", steps=50, augment=True, noise_trials=2)
    assert (options.trials, options.sampler, options.max_train, options.budget_ms) == (8, "random", 200, 20.0)
    assert options.storage.study == "old" and options.storage.runs_dir == (tmp_path / "runs").resolve()
    # stored again as groups, it reads back the same
    assert SearchOptions.from_dict({"budget_ms": 20.0, **stored_to_dict(stored_record(options))}) == \
        replace(options, storage=StorageOptions())


def test_a_flat_study_without_a_supernet_resumes_without_one(tmp_path):
    _stored_study(tmp_path / "runs" / "plain", {**FLAT, "supernet_steps": 0})
    assert resume_options(tmp_path / "runs" / "plain", given={}).supernet is None


class CountingSampler(optuna.samplers.RandomSampler):
    proposals = 0

    def sample_independent(self, study, trial, param_name, param_distribution):
        CountingSampler.proposals += 1
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_a_sampler_object_is_used_as_given_and_stored_by_its_class_name(tmp_path):
    sampler = CountingSampler(seed=1)
    options = SearchOptions(budget_ms=20.0, sampler=sampler)
    assert make_sampler(options, seed=5) is sampler
    assert stored_record(options)["sampler"] == "CountingSampler"
    _stored_study(tmp_path / "runs" / "obj", stored_record(options))
    with pytest.raises(OptionError, match="class CountingSampler as sampler, .* set sampler to such an object again"):
        resume_options(tmp_path / "runs" / "obj", given={})
    again = resume_options(tmp_path / "runs" / "obj", given={"sampler": sampler})
    assert again.sampler is sampler


def test_a_search_proposes_its_trials_with_the_sampler_object_given(tiny_space, runs_dir):
    from autoc.search.driver import run_search

    CountingSampler.proposals = 0
    result = run_search(tiny_options(tiny_space, runs_dir, "obj", trials=1, sampler=CountingSampler(seed=1)))
    assert result.trials_total == 1 and CountingSampler.proposals > 0
