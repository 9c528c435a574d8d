from dataclasses import replace

import pytest
import torch
from torch import nn

from autoc.arch.policy import LayerPolicy
from autoc.modelspace import ModelPolicy, analyse, choose_channels, load_model, prune
from autoc.modelspace.latency import LayerTable, calibrate, model_layers, policy_layers, random_policies

INT8 = LayerPolicy(precision="int8", weight_bits=8, act_bits=8)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0"])
def test_the_predicted_layer_shapes_of_a_policy_are_those_of_the_pruned_model(name):
    """The table is looked up by shapes computed without pruning: they must be the real ones."""
    model = load_model(f"torchvision:{name}", num_classes=10)
    x = torch.randn(1, 3, 32, 32)
    structure = analyse(model, x)
    layers = model_layers(model, x)
    for policy in random_policies(structure, 2, seed=3, keep_choices=(0.3, 0.5, 1.0), multiple=4):
        pruned = prune(model, choose_channels(model, dict(policy.keep), example_input=x, multiple=4), example_input=x)
        predicted = [replace(layer, precision="fp32") for layer in policy_layers(layers, structure, policy)]
        assert predicted == list(model_layers(pruned, x))


def test_a_unit_key_names_geometry_and_precision_and_only_those():
    model = load_model("torchvision:resnet18", num_classes=10)
    x = torch.randn(1, 3, 32, 32)
    structure = analyse(model, x)
    layers = {layer.name: layer for layer in model_layers(model, x)}
    assert layers["layer1.0.conv1"].key == layers["layer1.1.conv2"].key == "conv-r8x8-c64-o64-k3x3-s1x1-p1x1-d1x1-g1-fp32"
    int8 = policy_layers(list(layers.values()), structure, ModelPolicy.of(layers={"layer1.0.conv1": INT8}))
    assert int8[1].name == "layer1.0.conv1" and int8[1].key.endswith("-int8") and int8[2].key.endswith("-fp32")
    assert layers["fc"].key == "linear-c512-o10-fp32"


class _Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.bn_a = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.b, self.bn_b = nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64)
        self.c, self.bn_c = nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.bn_a(self.a(x)))
        x = torch.relu(self.bn_b(self.b(x)))
        x = torch.relu(self.bn_c(self.c(x)) + x)
        return self.fc(x.mean((2, 3)))


def test_a_calibrated_table_predicts_held_out_variants_and_measures_each_unit_once():
    model = _Small().eval()
    x = torch.randn(1, 3, 32, 32)
    structure = analyse(model, x)
    fit = [ModelPolicy.of()] + random_policies(structure, 7, seed=0, keep_choices=(0.25, 0.5, 1.0))
    held = random_policies(structure, 3, seed=1, keep_choices=(0.25, 0.5, 1.0))
    result = calibrate(model, structure, fit, example_input=x, held_out=held, network_repeats=40)
    assert result.fitted_on == 8 and len(result.held_out_errors) == 3
    assert all(abs(error) < 0.3 for error in result.held_out_errors), result.held_out_errors
    table = result.table
    layers = policy_layers(model_layers(model, x), structure, held[0])
    assert table.missing(layers) == [] and table.measure(layers) == 0  # nothing timed twice
    again = LayerTable.from_dict(table.to_dict())
    assert again.predict_ms(layers) == pytest.approx(table.predict_ms(layers))
    assert table.predict_ms(layers) > 0
