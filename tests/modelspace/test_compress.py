import pytest
import torch
from torch import nn

from autoc.arch.policy import LayerPolicy
from autoc.compress.quant import quantize_weight
from autoc.errors import PolicyError
from autoc.modelspace import ModelPolicy, compress, load_model, quantized_layers

INT8 = LayerPolicy(precision="int8", weight_bits=8, act_bits=8)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return load_model("torchvision:resnet18", num_classes=10)


def test_int8_lands_exactly_on_the_named_layers_and_keeps_their_paths(resnet):
    x = torch.randn(2, 3, 32, 32)
    small = compress(resnet, ModelPolicy.of(keep={"layer1.0.conv1": 0.5},
                                            layers={"layer2.0.conv1": INT8, "fc": INT8}), example_input=x)
    assert set(quantized_layers(small)) == {"layer2.0.conv1", "fc"}
    assert small.layer1[0].conv1.out_channels == 32 and resnet.layer1[0].conv1.out_channels == 64
    assert "layer2.0.conv1.weight" in small.state_dict() and "layer2.0.conv1.quant.act_max" in small.state_dict()
    assert type(resnet.fc) is nn.Linear  # the original is untouched


@torch.no_grad()
def test_a_quantised_conv_computes_on_fake_quantised_input_and_weights(resnet):
    x = torch.randn(2, 3, 32, 32)
    small = compress(resnet, ModelPolicy.of(layers={"conv1": LayerPolicy(precision="int8", weight_bits=4,
                                                                         act_bits=8)}), example_input=x)
    conv = small.conv1
    out = conv(x)  # the first call calibrates the activation range on this batch
    scale = (x.max() - x.min()) / 255
    zero_point = torch.round(-x.min() / scale)
    xq = torch.fake_quantize_per_tensor_affine(x, float(scale), int(zero_point), 0, 255)
    expected = nn.functional.conv2d(xq, quantize_weight(resnet.conv1.weight, bits=4), None, 2, 3)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out, resnet.conv1(x), atol=1e-3)  # 4-bit weights do change the result


def test_sparse_layers_stay_sparse_through_training(resnet):
    x = torch.randn(4, 3, 32, 32)
    small = compress(resnet, ModelPolicy.of(layers={"layer3.0.conv2": LayerPolicy(sparsity=0.75)}), example_input=x)
    weight = small.layer3[0].conv2.weight
    assert (weight == 0).float().mean().item() == pytest.approx(0.75, abs=1e-3)
    small.train()
    optimizer = torch.optim.SGD(small.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(2):
        optimizer.zero_grad()
        small(x).logsumexp(1).mean().backward()
        optimizer.step()
    assert (weight == 0).float().mean().item() >= 0.75 - 1e-3


def test_a_policy_naming_what_the_model_lacks_or_a_per_layer_keep_ratio_is_refused(resnet):
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(PolicyError, match="names layer 'layer1.0.bn1', which is not a conv or linear layer"):
        compress(resnet, ModelPolicy.of(layers={"layer1.0.bn1": INT8}), example_input=x)
    with pytest.raises(PolicyError, match="keeps channels per channel group, so give the ratio in keep="):
        ModelPolicy.of(layers={"conv1": LayerPolicy(keep_ratio=0.5)})
