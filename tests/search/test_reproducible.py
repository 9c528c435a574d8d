"""The same seed gives the same search: teacher, supernet, every estimate and the chosen trial
repeat bit for bit from fresh run directories, given one device profile and thread count."""
import hashlib
import shutil
from pathlib import Path

import optuna
import pytest
import torch

from autoc.evaluate.teacher import teacher_cache_path
from autoc.search.driver import run_search
from autoc.search.storage import default_storage_url
from autoc.space import load_space
from autoc.supernet import SupernetConfig, supernet_cache_path
from conftest import tiny_options

# Long enough that the teacher and estimates are well above chance (equal values would then
# prove nothing if every network scored 0.1).
SETTINGS = {"teacher_steps": 40, "finetune_steps": 4, "max_train": 300, "trials": 4}


def _search(root: Path, *, space: Path, devices: Path, **overrides):
    runs = root / "runs"
    shutil.copytree(devices, runs / "devices")  # one device profile: only training could differ
    options = tiny_options(space, runs, "same", **{**SETTINGS, **overrides})
    result = run_search(options)
    study = optuna.load_study(study_name="same", storage=default_storage_url(runs / "same"))
    return result, study


def _stored(study: optuna.Study, run_dir: Path) -> list[tuple]:
    def weights(path: str | None) -> str | None:  # the tensors' bytes (the file's zip records a temp name)
        if not path:
            return None
        state = torch.load(run_dir / path, weights_only=True)  # stored relative to the run directory
        return hashlib.sha256(b"".join(k.encode() + v.numpy().tobytes() for k, v in state.items())).hexdigest()

    return [(t.number, t.params, t.values, t.user_attrs.get("val_correct"), weights(t.user_attrs.get("weights")),
             t.user_attrs.get("threads")) for t in study.trials]


@pytest.mark.parametrize("weight_source", ["teacher", "supernet"])
def test_the_same_seed_repeats_a_search_bit_for_bit_from_fresh_run_directories(
        weight_source, tiny_space, warm_runs, tmp_path):
    extra = {"supernet": SupernetConfig(steps=10, largest_steps=30, random_subnets=1)} if weight_source == "supernet" else {}
    first, study_a = _search(tmp_path / "a", space=tiny_space, devices=warm_runs / "devices", **extra)
    second, study_b = _search(tmp_path / "b", space=tiny_space, devices=warm_runs / "devices", **extra)
    assert first.teacher_accuracy == second.teacher_accuracy > 0.2  # chance is 0.1
    stored_a, stored_b = _stored(study_a, first.run_dir), _stored(study_b, second.run_dir)
    assert len(stored_a) == 4 and all(row[3] and row[4] for row in stored_a)  # every trial trained and stored
    assert stored_a == stored_b
    assert max(row[2][0] for row in stored_a) > 0.2
    assert first.best.number == second.best.number
    assert all(row[5] == 1 for row in stored_a)  # the thread count each estimate ran at
    assert study_a.user_attrs["autoc_run_options"]["threads"] == 1


def test_a_search_at_another_seed_trains_another_teacher_and_estimates(tiny_space, warm_runs, tmp_path):
    first, study_a = _search(tmp_path / "a", space=tiny_space, devices=warm_runs / "devices", trials=2)
    other, study_b = _search(tmp_path / "b", space=tiny_space, devices=warm_runs / "devices", trials=2, seed=1)
    assert first.teacher_accuracy != other.teacher_accuracy or (
        _stored(study_a, first.run_dir) != _stored(study_b, other.run_dir))
    assert {p.name for p in (tmp_path / "a/runs/cache").glob("teacher-*")} != {
        p.name for p in (tmp_path / "b/runs/cache").glob("teacher-*")}


def test_a_thread_count_or_seed_that_changes_training_is_another_cache(tiny_space, digits16_for_keys):
    space, data = digits16_for_keys
    from autoc.training.loop import TrainConfig

    teacher = {teacher_cache_path(Path("c"), space_fingerprint=space.fingerprint(), data=data,
                                  config=TrainConfig(steps=5, seed=seed), threads=threads)
               for seed in (0, 1) for threads in (1, 2)}
    supernet = {supernet_cache_path(Path("c"), space=space, data=data, config=SupernetConfig(steps=5, seed=seed),
                                    threads=threads)
                for seed in (0, 1) for threads in (1, 2)}
    assert len(teacher) == 4 and len(supernet) == 4


def test_cpu_training_differs_between_thread_counts_so_the_key_must_hold_them(digits16_for_keys):
    """Why the thread count is in the keys: the same seeded training at 1 and 2 threads gives
    other weights (reductions split differently), while each count repeats itself."""
    space, data = digits16_for_keys
    from autoc.arch.builder import build_model
    from autoc.arch.netspec import build_netspec
    from autoc.training.loop import TrainConfig, train

    saved = torch.get_num_threads()

    def trained(threads: int) -> torch.Tensor:
        torch.set_num_threads(threads)
        model = build_model(build_netspec(space.largest_arch(num_classes=10)), seed=0)
        train(model, data.train_x, data.train_y, config=TrainConfig(steps=6, seed=0))
        return torch.cat([v.flatten().float() for v in model.state_dict().values()])

    try:
        one, one_again, two = trained(1), trained(1), trained(2)
    finally:
        torch.set_num_threads(saved)
    assert torch.equal(one, one_again)
    assert not torch.equal(one, two)


@pytest.fixture(scope="module")
def digits16_for_keys(tiny_space):
    from autoc.data.datasets import load_dataset

    space = load_space(str(tiny_space))
    return space, load_dataset("digits", input_size=space.input_size, seed=0, max_train=300, max_val=100)
