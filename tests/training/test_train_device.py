"""--train-device: where the SGD steps run. Named devices resolve or fail with the fix; a model
trains there and comes back to the CPU. The CUDA tests run only where torch sees a GPU."""
from __future__ import annotations

import pytest
import torch

from autoc.arch.builder import build_model
from autoc.candidate import Candidate
from autoc.cli import main
from autoc.arch.policy import LayerPolicy
from autoc.compress.sparsity import apply_policy_sparsity
from autoc.errors import ComputeError
from autoc.training.compute import trained_on, training_device
from autoc.data.datasets import load_dataset
from autoc.evaluate.recipe import scratch_recipe, train_from_scratch
from autoc.training.loop import TrainConfig, accuracy, train
from autoc.space import parse_space
from autoc.supernet import SupernetConfig, supernet_for_space, train_supernet
from helpers import tiny_arch, uniform_policy

GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="torch sees no CUDA GPU here")


def test_cpu_and_auto_resolve_to_what_this_machine_has():
    assert training_device("cpu") == torch.device("cpu")
    assert training_device(" CPU ") == torch.device("cpu")
    assert training_device("auto") == (torch.device("cuda") if GPU else torch.device("cpu"))


@pytest.mark.parametrize("name", ["tpu", "mps", "gpu", "cuda:x", ""])
def test_an_unknown_device_names_the_choices(name):
    with pytest.raises(ComputeError, match="cpu, cuda, cuda:N or auto"):
        training_device(name)


@pytest.mark.skipif(GPU, reason="this machine has a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_a_gpu_this_machine_lacks_fails_with_the_fix(name):
    with pytest.raises(ComputeError, match=r"torch sees no CUDA GPU.*train_device cpu, or auto"):
        training_device(name)


@needs_gpu
def test_a_gpu_index_beyond_the_machines_names_the_ones_it_has():
    with pytest.raises(ComputeError, match="cuda:0 to"):
        training_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(GPU, reason="this machine has a GPU")
def test_the_commands_refuse_a_missing_gpu_before_writing_anything(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["supernet", "train", "--train-device", "cuda", "--steps", "2", "--runs-dir", str(runs)]) == 2
    assert main(["search", "--budget-ms", "20", "--train-device", "cuda", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.count("torch sees no CUDA GPU") == 2 and len(err.strip().splitlines()) == 2
    assert err.count("use --train-device cpu, or auto") == 2  # the library's train_device, as each command spells it
    assert not runs.exists()


def test_training_on_the_cpu_by_name_is_training_as_before():
    """The default path (device None) and --train-device cpu take the same steps: same weights after."""
    data = load_dataset("digits", input_size=16, max_train=128, max_val=32)
    config = TrainConfig(steps=6, batch_size=16, augment=True, seed=3)
    models = []
    for device in (None, torch.device("cpu")):
        torch.manual_seed(0)
        candidate = Candidate(tiny_arch(), uniform_policy(tiny_arch(), LayerPolicy(sparsity=0.5)))
        model = build_model(candidate.netspec())
        apply_policy_sparsity(model, candidate.policy)
        train(model, data.train_x, data.train_y, config=config, device=device)
        models.append(model)
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)


def test_a_model_comes_back_to_its_own_device_even_when_training_fails():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="boom"):
        with trained_on(model, torch.device("cpu")) as target:
            assert target == torch.device("cpu")
            raise RuntimeError("boom")
    assert next(model.parameters()).device == torch.device("cpu")


@needs_gpu
def test_a_compressed_candidate_trains_on_the_gpu_and_comes_back_to_the_cpu():
    """int8 fake quantisers, 50% magnitude sparsity (its gradient mask lives on the CPU) and crop-and-flip."""
    data = load_dataset("digits", input_size=16, max_train=400, max_val=200)
    policy = uniform_policy(tiny_arch(), LayerPolicy(precision="int8", weight_bits=8, act_bits=8, sparsity=0.5))
    candidate = Candidate(tiny_arch(), policy)
    trained = train_from_scratch(candidate, data, config=scratch_recipe(steps=150, seed=0, augment=False),
                                 device=training_device("cuda"))
    weights = [p for p in trained.model.parameters()]
    assert all(p.device.type == "cpu" for p in weights)
    assert trained.accuracy > 0.5  # digits: 10 classes, chance 0.1
    convs = [m.weight for m in trained.model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.numel() > 8]
    zero_share = sum(int((w == 0).sum()) for w in convs) / sum(w.numel() for w in convs)
    assert zero_share > 0.45  # the masked weights stayed zero through training on the GPU


@needs_gpu
def test_the_supernet_trains_on_the_gpu_and_its_largest_network_learns():
    space = parse_space({
        "name": "tiny", "input_size": 16, "stem": {"width": [8, 16], "stride": 1},
        "stages": [{"depth": [1, 2], "width": [16, 24], "stride": 2, "kernel": [3, 5], "expansion": [3, 6]}],
        "head": {"width": [0, 64]},
    }, source="tiny")
    data = load_dataset("digits", input_size=16, max_train=400, max_val=200)
    supernet = supernet_for_space(space, num_classes=data.num_classes)
    loss = train_supernet(supernet, space, data.train_x, data.train_y,
                          config=SupernetConfig(steps=120, random_subnets=1, augment=True),
                          device=training_device("cuda"))
    assert all(p.device.type == "cpu" for p in supernet.parameters())
    assert loss < 1.5  # from ln(10) = 2.3 at the start
    assert accuracy(supernet.largest(calibration=data.train_x), data.val_x, data.val_y) > 0.5
