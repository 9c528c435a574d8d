import pytest
import torch

from autoc.arch.builder import build_model
from autoc.arch.config import ArchConfig, BlockOp
from autoc.arch.netspec import build_netspec, frozen_groups, group_producers, round_channels
from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.errors import PolicyError
from helpers import tiny_arch, uniform_policy


def test_shapes_follow_the_plan():
    spec = build_netspec(tiny_arch())
    model = build_model(spec)
    for conv in spec.convs():
        weight = model.get_submodule(conv.name).conv.weight
        assert tuple(weight.shape) == (conv.cout, conv.cin // conv.groups, conv.kernel, conv.kernel)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    # strides 1, 2, 2 from a 16x16 input: the head sees 4x4
    assert spec.head_resolution == 4


def test_residual_rule_and_groups():
    spec = build_netspec(tiny_arch())
    blocks = {b.name: b for b in spec.blocks}
    assert blocks["stages.0.0"].residual  # stride 1, 16 -> 16
    assert not blocks["stages.1.0"].residual  # stride 2
    assert blocks["stages.1.1"].residual
    assert blocks["stages.2.1"].convs == ()  # skip at stride 1, same width: identity
    producers = group_producers(spec)
    # the stem, the no-expand depthwise and the project of stage 0 write one tied group
    assert [c.name for c in producers["stem"]] == ["stem", "stages.0.0.dw", "stages.0.0.project"]
    assert [c.name for c in producers["stages.1.0.out"]] == ["stages.1.0.project", "stages.1.1.project"]


def test_pruned_widths_are_multiples_of_eight_and_tied():
    arch = tiny_arch()
    spec = build_netspec(arch, uniform_policy(arch, LayerPolicy(keep_ratio=0.5)))
    for conv in spec.convs():
        assert conv.cout % 8 == 0 and conv.cout >= 8
    blocks = {b.name: b for b in spec.blocks}
    assert blocks["stages.1.1"].cin == blocks["stages.1.1"].cout  # residual stays addable
    assert build_model(spec)(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_round_channels():
    assert round_channels(13, maximum=64) == 16
    assert round_channels(2, maximum=64) == 8
    assert round_channels(100, maximum=96) == 96


def test_tied_layers_with_different_keep_ratios_are_rejected():
    arch = tiny_arch()
    policy = dict(uniform_policy(arch, LayerPolicy()).layers)
    policy["stages.1.1.project"] = LayerPolicy(keep_ratio=0.5)
    with pytest.raises(PolicyError, match="stages.1.0.project.*stages.1.1.project"):
        build_netspec(arch, CompressionPolicy.from_mapping(policy))


def test_grouped_convs_freeze_their_groups():
    arch = tiny_arch()
    stages = list(arch.stages)
    stages[1] = type(stages[1])(24, 2, (BlockOp(3, 6), BlockOp(3, 1, groups=2)))
    arch = ArchConfig(**{**arch.__dict__, "stages": tuple(stages), "expand_at_e1": True})
    spec = build_netspec(arch)
    frozen = frozen_groups(spec)
    assert "stages.1.0.out" in frozen and "stages.1.1.hidden" in frozen
    with pytest.raises(PolicyError, match="grouped conv"):
        build_netspec(arch, uniform_policy(arch, LayerPolicy(keep_ratio=0.5)))
    model = build_model(spec)
    assert hasattr(model.get_submodule("stages.1.1"), "shuffle")
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_arch_json_round_trip():
    arch = tiny_arch()
    assert ArchConfig.from_dict(arch.to_dict()) == arch
    with pytest.raises(PolicyError):
        ArchConfig.from_dict({"stages": []})
    with pytest.raises(PolicyError, match="k3_x"):
        BlockOp.parse("k3_x")
