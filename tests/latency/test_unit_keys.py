import pytest
import torch

from autoc.arch.config import BlockOp, StageConfig
from autoc.arch.policy import CompressionPolicy
from autoc.errors import PolicyError
from autoc.latency.blocks import IDENTITY, build_unit_module, network_units
from latency_nets import INT8, int8_policy, small_net

FP32 = CompressionPolicy()


def keys(spec, policy=FP32):
    return [u.key for u in network_units(spec, policy)]


def test_keys_are_stable_and_readable():
    # Golden keys: changing the format invalidates every cached profile, so it must be deliberate.
    assert keys(small_net()) == keys(small_net())
    assert keys(small_net()) == [
        "stem-r16-c3-k3s1o16g1-relu6-fp32",
        "ir-r16-c16-k1s1o48g1-k3s2o48gdw-k1s1o16g1lin-res0-relu6-fp32",
        "ir-r8-c16-k1s1o48g1-k3s1o48gdw-k1s1o16g1lin-res1-relu6-fp32",
        "head-r8-c16-k1s1o32g1-fc10-relu6-fp32",
    ]
    assert [u.name for u in network_units(small_net(), FP32)] == ["stem", "stages.0.0", "stages.0.1", "head"]


@pytest.mark.parametrize(
    "variant",
    [
        dict(ops=(BlockOp(5, 3), BlockOp(3, 3))),  # kernel
        dict(stride=1),  # stride (and so resolution downstream)
        dict(ops=(BlockOp(3, 6), BlockOp(3, 3))),  # expansion
        dict(width=24),  # output channels
        dict(input_size=32),  # resolution
        dict(ops=(BlockOp(3, 3, groups=2), BlockOp(3, 3))),  # grouped 1x1 + shuffle
    ],
)
def test_every_latency_factor_changes_the_first_block_key(variant):
    assert keys(small_net(**variant))[1] != keys(small_net())[1]


def test_precision_changes_keys():
    spec = small_net()
    fp32, int8 = keys(spec), keys(spec, int8_policy(spec))
    assert all(a != b for a, b in zip(fp32, int8))
    assert all(k.endswith("-int8") for k in int8)
    only_first = keys(spec, int8_policy(spec, blocks={"stages.0.0"}, stem=False, head=False))
    assert only_first[1].endswith("-int8") and only_first[2] == fp32[2] and only_first[0] == fp32[0]


def test_residual_and_head_conv_change_keys():
    assert "-res1-" in keys(small_net(stride=1))[1]  # stride 1, same width: residual
    assert "-res0-" in keys(small_net())[1]
    assert keys(small_net(head_width=0))[-1] == "head-r8-c16-fc10-relu6-fp32"


def test_identity_block_costs_nothing_and_skip_conv_is_a_unit():
    spec = small_net(stride=1, ops=(BlockOp(3, 3), BlockOp(skip=True)))
    units = network_units(spec, FP32)
    assert units[2].key == IDENTITY and not units[2].measurable
    skip_conv = network_units(small_net(ops=(BlockOp(skip=True),)), FP32)[1]
    assert skip_conv.key.startswith("conv-r16-c16-k1s2o16g1")


def test_mixed_precision_inside_a_block_is_rejected():
    spec = small_net()
    policy = CompressionPolicy.from_mapping({"stages.0.0.dw": INT8})
    with pytest.raises(PolicyError, match="mixes precisions"):
        network_units(spec, policy)


def test_unit_modules_compute_the_unit_shapes():
    spec = small_net(stages=(StageConfig(16, 2, (BlockOp(3, 3, groups=2),)), StageConfig(24, 1, (BlockOp(5, 6),))))
    for unit in network_units(spec, FP32):
        module = build_unit_module(unit).eval()
        out = module(torch.zeros(unit.input_shape))
        if unit.kind == "head":
            assert out.shape == (1, 10)
        else:
            assert out.shape[1] == unit.convs[-1].cout
        # layer names equal the network's, so the same int8 layer names apply
        names = {n for n, _ in module.named_modules()}
        assert {c.name for c in unit.convs} <= names
