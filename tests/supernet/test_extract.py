"""Extraction is a pure function whose result computes what the supernet computes."""
from __future__ import annotations

import random

import pytest
import torch

from autoc.errors import PolicyError
from autoc.space import parse_space
from autoc.training.loop import recalibrate_batchnorm, train, TrainConfig
from autoc.supernet import (
    calibrate_batchnorm,
    extract,
    largest_candidate,
    random_candidate,
    smallest_candidate,
    supernet_for_space,
)
from supernet_fixtures import MBV2_LIKE, _one_thread, digits16, fbnet_space, se_space, tiny_space  # noqa: F401  (fixtures)


def _candidates(space, n=3):
    rng = random.Random(3)
    return [largest_candidate(space, num_classes=10), smallest_candidate(space, num_classes=10)] + [
        random_candidate(space, rng, num_classes=10) for _ in range(n)
    ]


@pytest.mark.parametrize("space_name", ["tiny_space", "fbnet_space", "se_space"])
def test_extracted_model_equals_functional_forward(space_name, request):
    space = request.getfixturevalue(space_name)
    supernet = supernet_for_space(space, num_classes=10)
    with torch.no_grad():  # give BatchNorm affine terms and transforms non-trivial values
        for p in supernet.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(32, 3, 16, 16)
    for candidate in _candidates(space):
        subnet = candidate.netspec()
        model = extract(supernet, subnet)
        recalibrate_batchnorm(model, x, batches=1, batch_size=32)
        calibrate_batchnorm(supernet, subnet, x, batches=1, batch_size=32)
        supernet.eval()
        model.eval()
        with torch.no_grad():
            expected = supernet(x[:16], subnet=subnet)
            torch.testing.assert_close(model(x[:16]), expected, rtol=1e-4, atol=1e-5)
            # extracting after calibration copies the calibrated statistics too
            torch.testing.assert_close(extract(supernet, subnet).eval()(x[:16]), expected, rtol=1e-4, atol=1e-5)


def test_extraction_is_pure_and_the_copy_is_standalone(tiny_space, digits16):
    supernet = supernet_for_space(tiny_space, num_classes=10)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    model = supernet.extract(random_candidate(tiny_space, random.Random(0), num_classes=10))
    train(model, digits16.train_x, digits16.train_y, config=TrainConfig(steps=2, batch_size=8))
    for key, value in supernet.state_dict().items():
        assert torch.equal(value, before[key]), key
    shared = {p.data_ptr() for p in supernet.parameters()}
    assert not shared & {p.data_ptr() for p in model.parameters()}


def test_smaller_kernels_go_through_the_learned_transform(tiny_space):
    supernet = supernet_for_space(tiny_space, num_classes=10)
    slot = supernet.slot("stages.1.0.dw")
    assert slot.slot.kernel == 7 and [t.shape for t in slot.transforms] == [(25, 25), (9, 9)]
    conv = next(c for c in largest_candidate(tiny_space, num_classes=10).netspec().convs() if c.name == "stages.1.0.dw")
    k3 = conv.__class__(**{**conv.__dict__, "kernel": 3})
    # identity transforms: the plain centre crop
    torch.testing.assert_close(slot.weight_for(k3), slot.weight[:, :, 2:5, 2:5])
    with torch.no_grad():
        slot.transforms[1].mul_(2.0)
    torch.testing.assert_close(slot.weight_for(k3), 2.0 * slot.weight[:, :, 2:5, 2:5])
    torch.testing.assert_close(slot.weight_for(conv), slot.weight)  # the largest kernel is untouched
    # gradients reach the shared 7x7 weight and the transform through a 3x3 sub-kernel
    slot.weight_for(k3).sum().backward()
    assert slot.weight.grad[:, :, 2:5, 2:5].abs().sum() > 0 and slot.weight.grad[:, :, 0].abs().sum() == 0
    assert slot.transforms[1].grad is not None and slot.transforms[0].grad is not None


def test_subnet_from_another_space_is_refused(tiny_space, fbnet_space):
    supernet = supernet_for_space(tiny_space, num_classes=10)
    foreign = largest_candidate(fbnet_space, num_classes=10)
    with pytest.raises(PolicyError, match="another search space"):
        supernet.extract(foreign)
    with pytest.raises(PolicyError, match="train a supernet"):
        supernet(torch.zeros(1, 3, 16, 16), subnet=largest_candidate(tiny_space, num_classes=5).netspec())


def test_se_and_hswish_subnets_slice_the_se_slot_by_hidden_width(se_space):
    supernet = supernet_for_space(se_space, num_classes=10)
    small = smallest_candidate(se_space, num_classes=10).netspec()
    block = next(b for b in small.blocks if b.se is not None and b.stage == 1)
    assert block.activation == "hswish"
    slot = supernet.se_slot(block.se)
    assert slot.slot.channels > block.se.channels and slot.slot.reduced > block.se.reduced
    se = extract(supernet, small).get_submodule(block.se.name)
    assert torch.equal(se.reduce.weight, slot.reduce_weight[: block.se.reduced, : block.se.channels])
    assert torch.equal(se.expand.bias, slot.expand_bias[: block.se.channels])
    # a space without SE keeps the supernet's state-dict keys as before
    assert not any(".se" in key or "se_slots" in key for key in supernet_for_space(
        parse_space(MBV2_LIKE), num_classes=10).state_dict())
