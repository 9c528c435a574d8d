"""Unstructured magnitude pruning: masks, global and sensitivity-guided allocation, size saving."""
from __future__ import annotations

import json

import pytest
import torch

from autoc.arch.builder import build_model
from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.compress.sparsity import (
    apply_policy_sparsity,
    apply_sparsity,
    conv_layers,
    global_sparsities,
    magnitude_mask,
    measured_sparsity,
    sensitivity_sparsities,
    with_sparsity,
)
from autoc.errors import PolicyError
from autoc.evaluate.metrics import size_bytes
from autoc.training.loop import TrainConfig, train
from helpers import tiny_arch, tiny_candidate


@pytest.fixture(autouse=True)
def _one_thread():  # small convs on 2 shared cores: extra threads only add hand-off time
    saved, _ = torch.get_num_threads(), torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def test_mask_zeroes_exactly_the_smallest_magnitudes():
    weight = torch.tensor([[0.3, -0.1], [2.0, -0.05]])
    assert magnitude_mask(weight, 0.5).tolist() == [[True, False], [True, False]]
    assert magnitude_mask(weight, 0.0).all()
    with pytest.raises(PolicyError, match=r"\[0, 1\)"):
        magnitude_mask(weight, 1.0)


def test_zeros_stay_zero_through_fine_tuning():
    model = build_model(tiny_candidate(precision="fp32").netspec())
    masks = apply_sparsity(model, {"stages.1.0.expand": 0.6, "head": 0.3})
    x, y = torch.randn(64, 3, 16, 16), torch.randint(0, 10, (64,))
    before = model.get_submodule("head").conv.weight.clone()
    train(model, x, y, config=TrainConfig(steps=4, batch_size=16, lr=0.1, weight_decay=1e-3))
    for name, mask in masks.items():
        weight = model.get_submodule(name).conv.weight
        assert torch.all(weight[~mask] == 0), name
    head = model.get_submodule("head").conv.weight
    assert not torch.equal(head[masks["head"]], before[masks["head"]])  # the kept weights did train
    assert float((head == 0).float().mean()) == pytest.approx(0.3, abs=0.01)


def test_global_threshold_hits_the_target_and_spares_large_weights():
    model = build_model(tiny_candidate(precision="fp32").netspec())
    with torch.no_grad():
        model.get_submodule("stages.0.0.project").conv.weight.mul_(100.0)  # a layer of big weights
    per_layer = global_sparsities(model, 0.5)
    sizes = {n: c.weight.numel() for n, c in conv_layers(model).items()}
    zeroed = sum(per_layer[n] * sizes[n] for n in sizes)
    assert zeroed == pytest.approx(0.5 * sum(sizes.values()), abs=1)
    assert per_layer["stages.0.0.project"] == 0.0 and max(per_layer.values()) > 0.5
    apply_sparsity(model, per_layer)
    assert measured_sparsity(model) == pytest.approx(0.5, abs=0.01)


def test_sensitivity_guided_spares_the_sensitive_layer():
    torch.manual_seed(0)
    model = build_model(tiny_candidate(precision="fp32").netspec())
    x = torch.randn(32, 3, 16, 16)
    reference = model.eval()(x).argmax(1)
    sensitive = "stages.1.0.expand"

    def agreement(m):  # accuracy against the dense model's own predictions, plus a penalty on one layer
        score = float((m.eval()(x).argmax(1) == reference).float().mean())
        zeros = float((m.get_submodule(sensitive).conv.weight == 0).float().mean())
        return score - zeros  # pruning this layer costs as much accuracy as it zeroes

    levels = (0.25, 0.5, 0.75)
    chosen = sensitivity_sparsities(model, agreement, 0.4, levels=levels)
    sizes = {n: c.weight.numel() for n, c in conv_layers(model).items()}
    assert sum(chosen[n] * sizes[n] for n in sizes) >= 0.4 * sum(sizes.values())
    assert set(chosen.values()) <= {0.0, *levels}
    assert chosen[sensitive] < max(chosen.values())
    # the model is left as it was
    assert measured_sparsity(model) == 0.0


def test_policy_sparsity_round_trips_only_when_used_and_counts_in_size():
    arch = tiny_arch()
    names = [c for c in tiny_candidate().netspec().layer_names()]
    dense = CompressionPolicy.from_mapping({n: LayerPolicy(precision="int8", weight_bits=8, act_bits=8) for n in names})
    assert "sparsity" not in json.dumps(dense.to_dict())
    sparse = with_sparsity(dense, {"head": 0.75})
    assert sparse.to_dict()["head"]["sparsity"] == 0.75
    assert CompressionPolicy.from_dict(json.loads(json.dumps(sparse.to_dict()))) == sparse
    from autoc.arch.netspec import build_netspec

    spec = build_netspec(arch)
    head_weights = spec.head.cin * spec.head.cout
    # bitmap rule: n * (1 - s) * bits + n mask bits, instead of n * bits
    saved_bits = head_weights * 8 - (head_weights // 4 * 8 + head_weights)
    assert size_bytes(spec, dense) - size_bytes(spec, sparse) == pytest.approx(saved_bits / 8, abs=1)
    # a barely sparse layer is stored dense: the mask would cost more than it saves
    assert size_bytes(spec, with_sparsity(dense, {"head": 0.05})) == size_bytes(spec, dense)
    with pytest.raises(PolicyError, match="sparsity"):
        LayerPolicy(sparsity=1.0)
    model = build_model(spec)
    apply_policy_sparsity(model, sparse)
    assert float((model.get_submodule("head").conv.weight == 0).float().mean()) == 0.75
