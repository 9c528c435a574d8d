import torch
from torch import nn

from autoc.modelspace import analyse, choose_channels, load_model, prune
from autoc.modelspace.groups import CLASSIFIER


def test_resnet_residual_stages_are_one_group_each_and_the_classifier_stays():
    model = load_model("torchvision:resnet18", num_classes=10)
    structure = analyse(model, torch.randn(1, 3, 32, 32))
    stem = structure.group("conv1")
    # the stem's channels run through layer1's residual adds: every conv writing into them is tied
    assert {"conv1", "bn1", "layer1.0.conv2", "layer1.0.bn2", "layer1.1.conv2", "layer1.1.bn2"} <= set(stem.layers)
    stage2 = structure.group("layer2.0.conv2")
    assert {"layer2.0.downsample.0", "layer2.1.conv2"} <= set(stage2.layers)
    assert structure.fixed == {"fc": CLASSIFIER}
    assert len(structure.groups) == 12 and len(structure.layers) == 21
    assert not any("fc" in group.layers for group in structure.groups)


def test_squeeze_excite_ties_its_scale_to_the_channels_it_scales():
    model = load_model("torchvision:mobilenet_v3_small", num_classes=10)
    structure = analyse(model, torch.randn(1, 3, 32, 32))
    expand = structure.group("features.9.block.0.0")
    assert "features.9.block.2.fc2" in expand.layers  # the SE's output scales the expanded channels
    assert structure.group("features.9.block.2.fc1").layers == ("features.9.block.2.fc1",)


class _Scale(nn.Module):
    """A layer type Torch-Pruning has no rule for, holding a per-channel parameter."""

    def __init__(self, channels):
        super().__init__()
        self.scale = nn.Parameter(torch.rand(channels))

    def forward(self, x):
        return x * self.scale.view(1, -1, 1, 1)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.s = nn.Conv2d(3, 8, 3), _Scale(8)
        self.b, self.bn = nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = torch.relu(self.bn(self.b(self.s(self.a(x)))))
        return self.fc(x.mean((2, 3)))


def test_a_layer_without_a_pruning_rule_is_left_whole_and_named_with_the_reason():
    model = _Net().eval()
    x = torch.randn(1, 3, 16, 16)
    structure = analyse(model, x)
    assert structure.fixed["s"] == "_Scale: Torch-Pruning has no rule to prune it"
    assert [g.name for g in structure.groups] == ["b"]  # the group through 's' is not offered
    pruned = prune(model, choose_channels(model, {"b": 0.5}, example_input=x), example_input=x)
    assert pruned.a.out_channels == 8 and pruned.s.scale.shape == (8,) and pruned.b.out_channels == 8
    assert pruned(x).shape == (1, 4)
