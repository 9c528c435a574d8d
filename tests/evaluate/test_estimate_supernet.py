"""The search's accuracy estimate on the supernet path, and multi-teacher distillation."""
from __future__ import annotations

import random

import pytest
import torch

from autoc.compress.quant import FakeQuant
from autoc.compress.sparsity import measured_sparsity, with_sparsity
from autoc.errors import OptionError
from autoc.data.datasets import load_dataset
from autoc.evaluate.estimate import EstimateConfig, build_from_supernet, estimate_candidate, eval_subset
from autoc.training.loop import TrainConfig, predict_logits, teacher_logits_of, train
from autoc.space import parse_space
from autoc.supernet import random_candidate, supernet_for_space

SPACE = {
    "name": "tiny",
    "input_size": 16,
    "stem": {"width": [8, 16], "stride": 1},
    "stages": [{"depth": [1, 2], "width": [16, 24], "stride": 2, "kernel": [3, 5], "expansion": [3, 6]}],
    "head": {"width": [32]},
    "compression": {"keep_ratio": [0.5, 1.0], "precision": ["int8"], "weight_bits": [8]},
}


@pytest.fixture(autouse=True)
def _one_thread():  # small convs on 2 shared cores: extra threads only add hand-off time
    saved, _ = torch.get_num_threads(), torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def setup():
    space = parse_space(SPACE)
    data = load_dataset("digits", input_size=16, max_train=300, max_val=120)
    return space, data, supernet_for_space(space, num_classes=10)


def test_estimate_candidate_builds_compresses_and_scores(setup):
    space, data, supernet = setup
    candidate = random_candidate(space, random.Random(0), num_classes=10)
    candidate = type(candidate)(candidate.arch, with_sparsity(candidate.policy, {"stages.0.0.project": 0.5}))
    teacher = supernet.largest(calibration=data.train_x)
    logits = teacher_logits_of([teacher], data.train_x)
    model, estimate = estimate_candidate(candidate, supernet=supernet, data=data, teacher_logits=logits,
                                         config=EstimateConfig(finetune_steps=3, max_eval=50))
    assert 0.0 <= estimate.accuracy <= 1.0 and estimate.seconds > 0
    assert model.spec == candidate.netspec()
    assert all(m.quant is not None and isinstance(m.quant, FakeQuant) for m in model.modules() if hasattr(m, "quant"))
    weight = model.get_submodule("stages.0.0.project").conv.weight
    assert float((weight == 0).float().mean()) == pytest.approx(0.5, abs=0.02)  # kept through fine-tuning
    assert 0 < measured_sparsity(model) < 0.5


def test_build_from_supernet_does_not_touch_the_supernet(setup):
    space, data, supernet = setup
    before = [p.clone() for p in supernet.parameters()]
    model = build_from_supernet(random_candidate(space, random.Random(1), num_classes=10), supernet=supernet)
    train(model, data.train_x, data.train_y, config=TrainConfig(steps=2, batch_size=8))
    assert all(torch.equal(a, b) for a, b in zip(before, supernet.parameters()))


def test_multi_teacher_logits_average_soft_targets(setup):
    space, data, supernet = setup
    teachers = [supernet.largest(calibration=data.train_x),
                supernet.extract(random_candidate(space, random.Random(2), num_classes=10), calibration=data.train_x)]
    stacked = teacher_logits_of(teachers, data.train_x[:40])
    assert stacked.shape == (2, 40, 10)
    torch.testing.assert_close(stacked[1], predict_logits(teachers[1], data.train_x[:40]))
    student = supernet.extract(random_candidate(space, random.Random(3), num_classes=10))
    loss = train(student, data.train_x[:40], data.train_y[:40], teacher_logits=stacked,
                 config=TrainConfig(steps=2, batch_size=8, alpha=1.0))
    assert loss > 0


def test_eval_subset_is_stratified_not_a_prefix():
    labels = torch.arange(10).repeat_interleave(50)  # class-sorted, as the loaders return them
    keep = eval_subset(labels, 100, seed=0)
    assert torch.bincount(labels[keep], minlength=10).tolist() == [10] * 10
    assert eval_subset(labels, None, seed=0).shape[0] == 500


def test_bad_estimate_config():
    with pytest.raises(OptionError, match="finetune_steps"):
        EstimateConfig(finetune_steps=-1)
