"""Per-stage activations (relu, relu6, hswish) and squeeze-excite in the arch, the plan and the builder."""
import json

import pytest
import torch
from torch import nn

from autoc.arch.builder import SqueezeExcite, build_model
from autoc.arch.config import ArchConfig
from autoc.arch.netspec import build_netspec, make_divisible
from autoc.candidate import Candidate
from autoc.errors import PolicyError
from helpers import se_arch, se_candidate, tiny_arch


def test_make_divisible_is_mobilenetv3s():
    assert [make_divisible(v) for v in (4, 12, 24, 36, 40, 72, 100)] == [8, 16, 24, 40, 40, 72, 104]


def test_each_block_carries_its_stages_activation_and_se():
    spec = build_netspec(se_arch())
    assert spec.activation == "relu"
    assert [b.activation for b in spec.blocks] == ["relu", "hswish", "hswish", "hswish", "hswish"]
    se = [b.se for b in spec.blocks]
    assert se[4] is None  # a skip op has no depthwise conv, so no SE
    # hidden 16 (no expand), 16*6, 24*3, 24*3 with ratio 0.5
    assert [(s.channels, s.reduced, s.group) for s in se[:4]] == [
        (16, 8, "stem"), (96, 24, "stages.1.0.hidden"), (72, 24, "stages.1.1.hidden"), (72, 40, "stages.2.0.hidden"),
    ]
    # SE convs are not layers of the plan: policies, pruning groups and quantisation do not see them
    assert not any(".se" in name for name in spec.layer_names())


def test_builder_applies_the_blocks_activation_and_inserts_se_after_the_depthwise_conv():
    model = build_model(build_netspec(se_arch()), seed=0).eval()
    assert isinstance(model.stem.act, nn.ReLU)
    block = model.stages[1][0]
    assert block.layer_order == ["expand", "dw", "se", "project"]
    assert isinstance(block.expand.act, nn.Hardswish) and isinstance(block.dw.act, nn.Hardswish)
    assert isinstance(model.stages[0][0].dw.act, nn.ReLU)
    assert isinstance(block.se, SqueezeExcite)
    assert block.se.reduce.bias is not None and block.se.expand.bias is not None
    assert isinstance(model.head.act, nn.ReLU)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_se_scales_the_hidden_tensor_by_the_hard_sigmoid_of_its_excitation():
    se = build_model(build_netspec(se_arch()), seed=0).stages[1][0].se
    x = torch.randn(2, 96, 8, 8)
    pooled = x.mean((2, 3), keepdim=True)
    gate = torch.nn.functional.hardsigmoid(se.expand(torch.relu(se.reduce(pooled))))
    torch.testing.assert_close(se(x), x * gate)


def test_pruning_the_hidden_group_narrows_se_but_not_its_reduced_width():
    full, pruned = se_candidate(keep=1.0).netspec(), se_candidate(keep=0.5).netspec()
    for a, b in zip(full.blocks, pruned.blocks):
        if a.se is not None:
            assert b.se.channels == next(c for c in b.convs if c.depthwise).cout < a.se.channels
            assert b.se.reduced == a.se.reduced


def test_arch_round_trips_and_plain_stages_serialise_as_before():
    arch = se_arch()
    data = json.loads(json.dumps(arch.to_dict()))
    assert ArchConfig.from_dict(data) == arch
    assert data["stages"][0] == {"width": 16, "stride": 1, "ops": ["k3_e1"], "se": True}
    assert data["stages"][2]["activation"] == "hswish" and data["stages"][2]["se_ratio"] == 0.5
    plain = tiny_arch().to_dict()
    assert all(set(s) == {"width", "stride", "ops"} for s in plain["stages"])
    # a stage naming the network's own activation is the same architecture as one naming none
    data["stages"][0]["activation"] = "relu"
    assert ArchConfig.from_dict(data) == arch
    cand = se_candidate()
    assert Candidate.from_dict(json.loads(json.dumps(cand.to_dict()))) == cand


@pytest.mark.parametrize("where", ["top", "stage"])
def test_an_unknown_activation_is_a_one_line_error_naming_the_allowed_ones(where):
    data = se_arch().to_dict()
    if where == "top":
        data["activation"] = "swish"
    else:
        data["stages"][1]["activation"] = "swish"
    with pytest.raises(PolicyError) as info:
        ArchConfig.from_dict(data)
    message = str(info.value)
    assert "'swish'" in message and "['relu6', 'relu', 'hswish']" in message and "\n" not in message
    if where == "stage":
        assert "stages[1].activation" in message


def test_se_counts_in_macs_size_and_memory_at_fp32():
    import dataclasses

    from autoc.arch.policy import CompressionPolicy
    from autoc.evaluate.memory import training_bytes
    from autoc.evaluate.metrics import size_bytes, spec_macs

    arch = se_arch()
    plain = dataclasses.replace(arch, stages=tuple(dataclasses.replace(s, se=False) for s in arch.stages))
    with_se, without = build_netspec(arch), build_netspec(plain)
    se = [b.se for b in with_se.blocks if b.se is not None]
    assert spec_macs(with_se) - spec_macs(without) == sum(s.macs() for s in se)
    policy = CompressionPolicy()
    assert size_bytes(with_se, policy) - size_bytes(without, policy) == 4 * sum(s.params() for s in se)
    assert training_bytes(with_se, batch_size=2) > training_bytes(without, batch_size=2)
