from dataclasses import replace

import pytest

from autoc.arch.config import BlockOp, StageConfig
from autoc.compress.policy import CompressionPolicy
from autoc.latency.calibrate import calibrate_overhead, kendall_tau, measure_networks
from autoc.errors import DeviceError
from autoc.latency.model import LookupTableLatencyModel, open_host_model
from autoc.latency.profile import load_profile
from latency_nets import int8_policy, small_net


def networks():
    deep = small_net(
        input_size=32,
        stages=(
            StageConfig(16, 1, (BlockOp(3, 1),)),
            StageConfig(24, 2, (BlockOp(3, 6), BlockOp(5, 3))),
            StageConfig(32, 2, (BlockOp(3, 6), BlockOp(skip=True))),
        ),
        head_width=64,
    )
    wide = small_net(input_size=24, width=32, ops=(BlockOp(5, 6), BlockOp(3, 6)))
    tiny = small_net()
    return [
        (deep, CompressionPolicy()),
        (wide, int8_policy(wide)),
        (tiny, CompressionPolicy()),
        (deep, int8_policy(deep, blocks={"stages.1.0", "stages.1.1"}, stem=False, head=False)),
        (wide, CompressionPolicy()),
    ]


def test_whole_network_prediction_tracks_measurement(tmp_path):
    host_model = open_host_model(tmp_path / "host.json")
    nets = networks()
    profile = calibrate_overhead(host_model, nets[:3], held_out=nets[3:], repeats=20)
    assert profile.overhead_ms == host_model.profile.overhead_ms
    validation = profile.validation
    assert validation["n"] == 2 and validation["fit_networks"] == 3 and not validation["in_sample"]
    assert {"within_10pct", "mape_pct", "kendall_tau", "networks"} <= set(validation)
    assert load_profile(host_model.profile_path).validation == validation
    # Held-out networks, measured in the same rounds as the units (so machine drift is shared).
    # Loose on purpose: these networks take 0.02-0.2 ms on a shared CI machine.
    for (spec, policy), row in zip(nets[3:], validation["networks"]):
        assert host_model.predict(spec, policy) == pytest.approx(row["predicted_ms"], abs=1e-3)
        assert 0.5 < row["predicted_ms"] / row["measured_ms"] < 2.0, validation["networks"]


def test_measure_networks():
    nets = networks()[1:3]
    measured = measure_networks(nets, warmup=1, repeats=5)
    assert len(measured) == 2 and all(ms > 0 for ms in measured)


def test_without_held_out_the_figures_are_in_sample(tmp_path):
    host_model = open_host_model(tmp_path / "host.json")
    nets = networks()[2:3]
    validation = calibrate_overhead(host_model, nets, warmup=1, repeats=5).validation
    assert validation["in_sample"] and validation["n"] == 1
    with pytest.raises(ValueError, match="at least one network"):
        calibrate_overhead(host_model, [])
    phone = replace(host_model.profile, device="pixel7")
    foreign = LookupTableLatencyModel(phone, profile_path=None, measure_missing=False)
    with pytest.raises(DeviceError, match="pixel7"):
        calibrate_overhead(foreign, nets)


def test_kendall_tau():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1.0], [2.0]) is None
