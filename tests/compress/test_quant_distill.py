import pytest
import torch
from torch.nn import functional as F

from autoc.arch.builder import build_model
from autoc.compress.distill import distillation_loss
from autoc.arch.netspec import build_netspec
from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.compress.quant import FakeQuant, _dense_view, apply_quantization, missing_ranges, quantize_weight
from helpers import tiny_arch, tiny_candidate


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_weight_quantisation_is_on_a_per_channel_grid(bits):
    weight = torch.randn(8, 4, 3, 3) * torch.linspace(0.1, 2.0, 8).view(8, 1, 1, 1)
    q = quantize_weight(weight, bits=bits)
    qmax = 2 ** (bits - 1) - 1
    scale = weight.abs().flatten(1).amax(1) / qmax
    levels = q / scale.view(8, 1, 1, 1)
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)
    assert levels.abs().max() <= qmax + 1e-4
    assert ((q - weight).abs() <= scale.view(8, 1, 1, 1) / 2 + 1e-6).all()
    assert all(len(torch.unique(q[c])) <= 2 * qmax + 1 for c in range(8))


def test_straight_through_gradient():
    weight = torch.randn(4, 2, 1, 1, requires_grad=True)
    quantize_weight(weight, bits=4).sum().backward()
    torch.testing.assert_close(weight.grad, torch.ones_like(weight))


def test_activation_quantisation_observes_then_quantises():
    fq = FakeQuant(weight_bits=8, act_bits=8)
    x = torch.linspace(-1.0, 3.0, 1000).view(1, 1, 10, 100)
    fq.train()
    xq, _ = fq(x, torch.ones(1, 1, 1, 1))
    assert float(fq.act_min) == pytest.approx(-1.0) and float(fq.act_max) == pytest.approx(3.0)
    scale = 4.0 / 255
    assert len(torch.unique(xq)) <= 256
    assert (xq - x).abs().max() <= scale / 2 + 1e-5


def test_activation_ranges_are_observed_alike_in_either_memory_layout():
    # Training runs channels-last; the observer reads such a batch through a dense view, not a copy.
    x = torch.randn(4, 6, 5, 7) * torch.linspace(0.5, 3.0, 6).view(1, 6, 1, 1)
    default, channels_last = FakeQuant(weight_bits=8, act_bits=8), FakeQuant(weight_bits=8, act_bits=8)
    weight = torch.ones(6, 1, 1, 1)
    expected_min = expected_max = None
    for step in range(3):
        batch = x * (step + 1) - step
        out_default, _ = default(batch, weight)
        out_last, _ = channels_last(batch.contiguous(memory_format=torch.channels_last), weight)
        assert torch.equal(default.act_min, channels_last.act_min) and torch.equal(default.act_max, channels_last.act_max)
        assert torch.equal(out_default, out_last)
        lo, hi = float(batch.min()), float(batch.max())
        expected_min = lo if expected_min is None else expected_min + 0.1 * (lo - expected_min)
        expected_max = hi if expected_max is None else expected_max + 0.1 * (hi - expected_max)
    assert float(channels_last.act_min) == pytest.approx(expected_min, rel=1e-5)
    assert float(channels_last.act_max) == pytest.approx(expected_max, rel=1e-5)
    assert out_last.is_contiguous(memory_format=torch.channels_last)
    channels_last_batch = x.contiguous(memory_format=torch.channels_last)
    view = _dense_view(channels_last_batch)  # what the observer reduces: no copy of the batch
    assert view.is_contiguous() and view.data_ptr() == channels_last_batch.data_ptr()


def test_policy_int8_layers_get_quantisers_and_stay_close_to_fp32():
    cand = tiny_candidate(keep=1.0, precision="int8", bits=8)
    model = build_model(cand.netspec()).eval()
    x = torch.randn(16, 3, 16, 16)
    reference = model(x)
    apply_quantization(model, cand.policy)
    assert all(m.quant is not None for n, m in model.named_modules() if hasattr(m, "quant"))
    quantised = model(x)  # first call calibrates the activation ranges
    assert not torch.equal(quantised, reference)
    rel = (quantised - reference).norm() / reference.norm()
    assert rel < 0.1
    fp32 = apply_quantization(build_model(cand.netspec()), tiny_candidate(keep=1.0, precision="fp32").policy)
    assert all(m.quant is None for n, m in fp32.named_modules() if hasattr(m, "quant"))


def test_distillation_loss():
    student = torch.randn(8, 10)
    labels = torch.randint(0, 10, (8,))
    ce = F.cross_entropy(student, labels)
    torch.testing.assert_close(distillation_loss(student, None, labels, temperature=4, alpha=0.7), ce)
    # a teacher that agrees with the student adds no distillation term
    same = distillation_loss(student, student.clone(), labels, temperature=4, alpha=0.5)
    torch.testing.assert_close(same, 0.5 * ce, atol=1e-6, rtol=1e-5)
    other = distillation_loss(student, torch.randn(8, 10) * 5, labels, temperature=4, alpha=0.5)
    assert other > same
    two_teachers = torch.stack([student, student])
    torch.testing.assert_close(distillation_loss(student, two_teachers, labels, temperature=4, alpha=0.5), same)


def test_weights_saved_before_the_runtime_requantisers_existed_load_and_observe_on_first_use():
    spec = build_netspec(tiny_arch())
    policy = CompressionPolicy.from_mapping(
        {name: LayerPolicy(precision="int8", weight_bits=8, act_bits=8) for name in spec.layer_names()})
    trained = apply_quantization(build_model(spec, seed=0), policy).train()
    with torch.no_grad():
        trained(torch.randn(4, 3, 16, 16))
    old = {k: v for k, v in trained.state_dict().items() if ".output." not in k and "sum_quant" not in k}
    assert len(old) < len(trained.state_dict())  # the model has requantisers that old files lack
    model = apply_quantization(build_model(spec), policy).eval()
    model.load_state_dict(old)
    assert missing_ranges(model)
    with torch.no_grad():
        model(torch.randn(4, 3, 16, 16))
    assert not missing_ranges(model)
    incomplete = dict(old)
    del incomplete["stem.quant.act_min"]  # a quantiser the file should have is still required
    with pytest.raises(RuntimeError, match="stem.quant.act_min"):
        apply_quantization(build_model(spec), policy).load_state_dict(incomplete)
