"""Elastic resolution (Once-for-All): a space that searches the input resolution trains its supernet at
every resolution of the list, and each candidate is calibrated and scored at its own."""
from __future__ import annotations

import copy
import json
import random

import pytest
import torch
import yaml
from torch.nn.modules.module import register_module_forward_pre_hook

from autoc.arch.builder import AutocNet
from autoc.cli import main
from autoc.data.datasets import load_dataset
from autoc.evaluate.estimate import EstimateConfig, estimate_candidate
from autoc.space import load_space, parse_space
from autoc.supernet import (
    SupernetConfig,
    calibrate_batchnorm,
    random_candidate,
    smallest_candidate,
    supernet_cache_path,
    supernet_for_space,
    train_supernet,
)
from autoc.supernet.elastic import Supernet
from helpers import SE_SPACE
from supernet_fixtures import MBV2_LIKE, _one_thread  # noqa: F401  (fixture)

RESOLUTIONS = [16, 24]


def at_resolutions(space: dict, resolutions=RESOLUTIONS) -> dict:
    data = copy.deepcopy(space)
    del data["input_size"]
    data["resolution"] = list(resolutions)
    return data


@pytest.fixture(scope="module")
def res_space():
    return parse_space(at_resolutions(MBV2_LIKE), source="tiny-res")


@pytest.fixture(scope="module")
def digits24():
    return load_dataset("digits", input_size=24, max_train=128, max_val=64)


@pytest.fixture
def forwards(monkeypatch):
    """(input size, sub-network resolution) of every supernet forward, in order."""
    seen = []
    forward = Supernet.forward

    def recording(self, x, *, subnet, **kw):
        seen.append((tuple(x.shape[-2:]), subnet.input_size))
        return forward(self, x, subnet=subnet, **kw)

    monkeypatch.setattr(Supernet, "forward", recording)
    return seen


@pytest.mark.parametrize("config", [
    SupernetConfig(steps=4, batch_size=16, random_subnets=2, largest_steps=1),
    SupernetConfig(steps=4, batch_size=16, random_subnets=2, sampling="uniform"),
], ids=["sandwich", "uniform"])
def test_supernet_training_runs_each_subnetwork_on_the_batch_at_its_own_resolution(res_space, digits24, forwards,
                                                                                    config):
    supernet = supernet_for_space(res_space, num_classes=10)
    train_supernet(supernet, res_space, digits24.train_x, digits24.train_y, config=config)
    assert all(size == (res,) * 2 for size, res in forwards)
    assert {res for _, res in forwards} == set(RESOLUTIONS)  # batches at each resolution were seen
    if config.sampling == "sandwich":
        per_step = 2 + config.random_subnets
        sandwich = forwards[config.largest_steps:]
        assert forwards[0][1] == 24  # the largest-first stage: the largest network at the largest resolution
        assert [res for _, res in sandwich[::per_step]] == [24] * config.steps  # the largest at the largest
        assert [res for _, res in sandwich[1::per_step]] == [16] * config.steps  # the smallest at the smallest


def test_resolution_stays_elastic_in_every_progressive_phase(res_space):
    rng = random.Random(0)
    kernel_phase = {random_candidate(res_space, rng, num_classes=10, elastic=frozenset({"kernel"})).arch.input_size
                    for _ in range(20)}
    assert kernel_phase == set(RESOLUTIONS)
    assert smallest_candidate(res_space, num_classes=10, elastic=frozenset({"kernel"})).arch.input_size == 16


def test_a_candidate_is_calibrated_fine_tuned_and_scored_at_its_own_resolution(res_space, digits24):
    supernet = supernet_for_space(res_space, num_classes=10)
    train_supernet(supernet, res_space, digits24.train_x, digits24.train_y,
                   config=SupernetConfig(steps=2, batch_size=16, random_subnets=1))
    supernet.eval()
    candidate = smallest_candidate(res_space, num_classes=10)
    assert candidate.arch.input_size == 16 and digits24.input_size == 24
    sizes = []

    def record(module, inputs):
        if isinstance(module, AutocNet):
            sizes.append(tuple(inputs[0].shape[-2:]))

    handle = register_module_forward_pre_hook(record)
    try:
        _, estimate = estimate_candidate(candidate, supernet=supernet, data=digits24, teacher_logits=None,
                                         config=EstimateConfig(finetune_steps=1, batch_size=16, max_eval=None))
        assert sizes and set(sizes) == {(16, 16)}  # calibration, the fine-tuning step and the evaluation
        sizes.clear()
        supernet.extract(candidate, calibration=digits24.train_x)
        assert set(sizes) == {(16, 16)}
    finally:
        handle.remove()
    assert len(estimate.correct) == 64


def test_supernet_batchnorm_calibration_uses_images_at_the_subnetworks_resolution(res_space, digits24, forwards):
    supernet = supernet_for_space(res_space, num_classes=10)
    calibrate_batchnorm(supernet, smallest_candidate(res_space, num_classes=10).netspec(), digits24.train_x,
                        batches=2, batch_size=32)
    assert forwards == [((16, 16), 16)] * 2


def test_the_cache_key_covers_the_resolution_list(digits24, tmp_path):
    config = SupernetConfig(steps=2)
    paths = {
        str(resolutions): supernet_cache_path(tmp_path, space=parse_space(at_resolutions(MBV2_LIKE, resolutions)),
                                              data=digits24, config=config, threads=1)
        for resolutions in ([16, 24], [16, 20, 24], [24], [20, 24])
    }
    assert len(set(paths.values())) == 4, paths


def test_squeeze_excite_stages_train_with_elastic_resolution(digits24, forwards):
    data = yaml.safe_load(SE_SPACE.read_text())
    space = parse_space(at_resolutions(data), source="se-res")
    supernet = supernet_for_space(space, num_classes=10)
    train_supernet(supernet, space, digits24.train_x, digits24.train_y,
                   config=SupernetConfig(steps=2, batch_size=16, random_subnets=2))
    assert {res for _, res in forwards} == set(RESOLUTIONS)
    assert hasattr(supernet, "se_slots")
    # a smaller expansion takes a narrower SE (reduced width follows the hidden width, as OFA's dynamic SE)
    small = smallest_candidate(space, num_classes=10).netspec()
    block = next(b for b in small.blocks if b.se is not None and b.stage == 1)
    slot = supernet.se_slot(block.se).slot
    assert block.se.channels < slot.channels and block.se.reduced < slot.reduced


def test_ofa_mbv3_builds_a_supernet_with_squeeze_excite_slots():
    space = load_space("ofa-mbv3")
    supernet = supernet_for_space(space, num_classes=10)
    assert len(space.resolutions) == 5 and len(supernet.se_slots) > 0
    candidate = smallest_candidate(space, num_classes=10)
    model = supernet.extract(candidate)
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, candidate.arch.input_size, candidate.arch.input_size))
    assert out.shape == (1, 10) and candidate.arch.input_size == 160


def test_a_search_with_the_supernet_estimate_on_a_multi_resolution_space_completes(res_space, tmp_path):
    from autoc.search.stored import open_stored_run

    path = tmp_path / "res.yaml"
    path.write_text(yaml.safe_dump(res_space.to_dict(), sort_keys=False))
    runs = tmp_path / "runs"
    assert main(["search", "--space", str(path), "--budget-ms", "50", "--device", "host", "--trials", "4",
                 "--supernet-steps", "2", "--supernet-random-subnets", "1", "--noise-trials", "0",
                 "--finetune-steps", "1", "--max-train", "128", "--max-val", "64", "--seed", "1",
                 "--cpus-per-worker", "1", "--study", "res", "--runs-dir", str(runs), "--no-progress"]) == 0
    assert len(list((runs / "cache").glob("supernet-tiny-mbv2-*.pt"))) == 1
    trials = open_stored_run(runs / "res").study.trials
    assert len(trials) == 4
    assert all(t.params["resolution"] in RESOLUTIONS for t in trials)
    assert {t.params["resolution"] for t in trials} == set(RESOLUTIONS), [t.params for t in trials]
    policy = json.loads((runs / "res" / "best_policy.json").read_text())
    best = next(t for t in trials if t.number == policy["trial"])
    assert policy["arch"]["input_size"] == best.params["resolution"]


def test_supernet_train_reports_each_end_at_its_own_resolution(res_space, tmp_path, capsys):
    path = tmp_path / "res.yaml"
    path.write_text(yaml.safe_dump(res_space.to_dict(), sort_keys=False))
    assert main(["supernet", "train", "--space", str(path), "--steps", "2", "--batch-size", "8", "--random-subnets",
                 "1", "--max-train", "60", "--max-val", "20", "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "largest sub-network: validation accuracy" in out and "images at 24 px" in out
    assert "smallest sub-network: validation accuracy" in out and "images at 16 px" in out
