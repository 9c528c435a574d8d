from dataclasses import replace

import pytest

from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.errors import DeviceError
from autoc.latency.energy import EnergyCoefficients, energy_mj, layer_costs
from autoc.latency.model import LookupTableLatencyModel
from latency_nets import int8_policy, small_net

FP32 = CompressionPolicy()


def test_layer_costs_count_macs_of_every_conv_and_the_classifier():
    spec = small_net(head_width=0)
    costs = {c.name: c for c in layer_costs(spec)}
    assert costs["stem"].macs == 16 * 3 * 9 * 16 * 16  # 3x3 conv 3->16 at 16x16
    assert costs["stages.0.0.dw"].macs == 48 * 9 * 8 * 8  # depthwise 48 ch, stride 2: 8x8 out
    assert costs["head"].macs == 16 * 10  # the classifier goes by the head's precision
    assert set(costs) == {*spec.layer_names(), "head"}


def test_int8_costs_less_energy_and_fewer_weight_bits_move_fewer_bytes():
    spec = small_net()
    coefficients = EnergyCoefficients()
    fp32 = energy_mj(spec, FP32, latency_ms=1.0, coefficients=coefficients)
    int8 = energy_mj(spec, int8_policy(spec), latency_ms=1.0, coefficients=coefficients)
    four_bit = LayerPolicy(precision="int8", weight_bits=4, act_bits=8)
    int4 = energy_mj(spec, CompressionPolicy.from_mapping({n: four_bit for n in [*spec.layer_names(), "head"]}),
                     latency_ms=1.0, coefficients=coefficients)
    assert 0 < int4 < int8 < fp32 / 3


def test_static_power_adds_energy_in_proportion_to_latency():
    spec = small_net()
    coefficients = EnergyCoefficients(static_mw=500.0)
    base = energy_mj(spec, FP32, latency_ms=0.0, coefficients=coefficients)
    assert energy_mj(spec, FP32, latency_ms=2.0, coefficients=coefficients) == pytest.approx(base + 1.0)  # 500 mW x 2 ms


def test_model_uses_the_profile_coefficients(host_model):
    spec = small_net()
    host_model.predict(spec, FP32)
    doubled = replace(
        host_model.profile,
        energy=EnergyCoefficients(fp32_pj_per_mac=9.2, pj_per_weight_byte=320, pj_per_activation_byte=2.5),
    )
    other = LookupTableLatencyModel(doubled, profile_path=None, measure_missing=False)
    assert other.predict_energy_mj(spec, FP32) == pytest.approx(2 * host_model.predict_energy_mj(spec, FP32))


def test_bad_coefficients_are_rejected():
    with pytest.raises(DeviceError, match="must be >= 0"):
        EnergyCoefficients(int8_pj_per_mac=-1)
    with pytest.raises(DeviceError, match="unknown energy coefficients"):
        EnergyCoefficients.from_dict({"pj_per_flop": 1})
