import pytest
import torch
from torch import nn

from autoc.errors import PolicyError
from autoc.modelspace import ChannelPlan, analyse, choose_channels, load_model, prune

MODELS = ["resnet18", "mobilenet_v2", "mobilenet_v3_small"]


def _randomise_norms(model):
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)


@torch.no_grad()
def _silence(model, structure, plan):
    """Zero every writer of the channels the plan removes: they then add nothing anywhere downstream."""
    modules = dict(model.named_modules())
    for name, kept in plan.kept.items():
        group = structure.group(name)
        removed = sorted(set(range(group.channels)) - set(kept))
        for layer in group.layers:
            for parameter in (modules[layer].weight, getattr(modules[layer], "bias", None)):
                if parameter is not None:
                    parameter[removed] = 0


@pytest.mark.parametrize("name", MODELS)
@torch.no_grad()
def test_pruning_the_silent_channels_of_every_group_leaves_the_outputs_unchanged(name):
    """Residual adds, depthwise convs and squeeze-excite tie channels across layers; if any tied layer
    were left out of a group, the pruned network would compute something else."""
    torch.manual_seed(0)
    model = load_model(f"torchvision:{name}", num_classes=10)
    _randomise_norms(model)
    x = torch.randn(2, 3, 48, 48)
    structure = analyse(model, x)
    plan = choose_channels(model, {g.name: 0.5 for g in structure.groups}, example_input=x)
    assert set(plan.kept) == {g.name for g in structure.groups}
    _silence(model, structure, plan)
    pruned = prune(model, plan, example_input=x)
    assert sum(p.numel() for p in pruned.parameters()) < 0.6 * sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(pruned(x), model(x), atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_the_kept_channels_are_the_originals_and_the_most_important():
    torch.manual_seed(0)
    model = load_model("torchvision:resnet18", num_classes=10)
    x = torch.randn(1, 3, 32, 32)
    model.layer1[0].conv1.weight[:5] *= 100  # the five largest filters of this group's first layer
    plan = choose_channels(model, {"layer1.0.conv1": 0.25}, example_input=x)
    kept = plan.kept["layer1.0.conv1"]
    assert len(kept) == 16 and set(range(5)) <= set(kept)
    pruned = prune(model, plan, example_input=x)
    torch.testing.assert_close(pruned.layer1[0].conv1.weight, model.layer1[0].conv1.weight[list(kept)])
    torch.testing.assert_close(pruned.layer1[0].conv2.weight, model.layer1[0].conv2.weight[:, list(kept)])
    assert model.layer1[0].conv1.out_channels == 64  # the original is untouched


def test_keep_ratios_round_to_the_channel_multiple():
    model = load_model("torchvision:mobilenet_v2", num_classes=10)
    x = torch.randn(1, 3, 32, 32)
    group = analyse(model, x).group("features.2.conv.0.0")  # the first expansion: 96 channels
    assert group.channels == 96
    assert group.kept(0.5) == 48 and group.kept(0.3, multiple=8) == 32 and group.kept(0.01, multiple=8) == 8
    plan = choose_channels(model, {group.name: 0.3}, example_input=x, multiple=8)
    assert len(plan.kept[group.name]) == 32


def test_a_keep_ratio_outside_0_1_or_an_unknown_group_is_refused_with_the_names():
    model = load_model("torchvision:resnet18", num_classes=10)
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(PolicyError, match=r"keep ratio 1.5 of group 'conv1' is outside \(0, 1\]"):
        choose_channels(model, {"conv1": 1.5}, example_input=x)
    with pytest.raises(PolicyError, match="no channel group 'layer9.conv1': use one of conv1, layer1.0.conv1"):
        choose_channels(model, {"layer9.conv1": 0.5}, example_input=x)
    with pytest.raises(PolicyError, match="no channel group 'features.1.conv.0.0': the plan was made for another"):
        prune(model, ChannelPlan(kept={"features.1.conv.0.0": (0, 1)}), example_input=x)
    with pytest.raises(PolicyError, match="group 'conv1' has 64 channels"):
        prune(model, ChannelPlan(kept={"conv1": (0, 64)}), example_input=x)
