from dataclasses import replace

import pytest

from autoc.arch.config import BlockOp, StageConfig
from autoc.arch.policy import CompressionPolicy
from autoc.latency.calibrate import (
    calibrate_correction,
    fit_correction,
    measure_networks,
    noise_figures,
    session_means,
    session_spreads,
)
from autoc.latency.measure import Measurement
from autoc.latency.validate import format_figures, kendall_tau, validation_figures
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
    profile = calibrate_correction(host_model, nets[:3], held_out=nets[3:], repeats=20)
    assert profile.correction == host_model.profile.correction
    validation = profile.validation
    assert validation["n"] == 2 and validation["fit_networks"] == 3 and not validation["in_sample"]
    assert {"within_10pct", "mape_pct", "kendall_tau", "networks", "worst", "protocol", "calibration_wall_s",
            "session_spread_median_pct", "session_spread_p90_pct", "noisy"} <= set(validation)
    assert validation["session_spread_p90_pct"] >= validation["session_spread_median_pct"] >= 0
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


def test_a_network_figure_is_the_mean_over_its_sessions():
    def m(ms):
        return Measurement(ms, ms, ms, ms, repeats=1)

    # two networks, two sessions each: [a1, b1, a2, b2]
    assert session_means([m(1.0), m(2.0), m(1.2), m(2.4)], networks=2) == pytest.approx([1.1, 2.2])
    with pytest.raises(ValueError, match="whole sessions"):
        session_means([m(1.0), m(2.0), m(1.2)], networks=2)
    assert session_spreads([m(1.0), m(2.0), m(1.2), m(2.4)], networks=2) == pytest.approx([0.2 / 1.1, 0.4 / 2.2])


def test_disagreeing_sessions_mark_a_calibration_noisy():
    quiet, busy = noise_figures([0.005, 0.01, 0.012, 0.02]), noise_figures([0.01, 0.05, 0.06, 0.2])
    assert not quiet["noisy"] and busy["noisy"]
    assert busy["session_spread_median_pct"] == pytest.approx(5.5) and busy["session_spread_p90_pct"] > 10
    figures = validation_figures(measured=[1.0, 2.0], predicted=[1.0, 2.1]) | busy
    assert "NOISY" in format_figures(figures, title="host")
    assert "NOISY" not in format_figures(validation_figures(measured=[1.0, 2.0], predicted=[1.0, 2.1]) | quiet,
                                         title="host")


def test_without_held_out_the_figures_are_in_sample(tmp_path):
    host_model = open_host_model(tmp_path / "host.json")
    nets = networks()[2:3]
    validation = calibrate_correction(host_model, nets, warmup=1, repeats=5).validation
    assert validation["in_sample"] and validation["n"] == 1
    with pytest.raises(ValueError, match="at least one network"):
        calibrate_correction(host_model, [])
    phone = replace(host_model.profile, device="pixel7")
    foreign = LookupTableLatencyModel(phone, profile_path=None, measure_missing=False)
    with pytest.raises(DeviceError, match="pixel7"):
        calibrate_correction(foreign, nets)


def test_kendall_tau():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1.0], [2.0]) is None


def test_tau_handles_ties():
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / (2 * 3) ** 0.5)


def test_fit_correction_recovers_scale_and_intercept():
    sums = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    correction = fit_correction(sums, [0.9 * s + 0.2 for s in sums])
    assert correction.scale == pytest.approx(0.9) and correction.intercept_ms == pytest.approx(0.2)
    few = fit_correction(sums[:3], [2 * s for s in sums[:3]])  # too few for an intercept: scale only
    assert few.scale == pytest.approx(2.0) and few.intercept_ms == 0.0


def test_validation_figures_and_worst_cases():
    figures = validation_figures(measured=[1.0, 2.0, 4.0], predicted=[1.05, 2.5, 4.0], names=["a", "b", "c"])
    assert figures["within_10pct"] == pytest.approx(2 / 3)
    assert figures["mape_pct"] == pytest.approx(100 * (0.05 + 0.25) / 3)
    assert figures["worst"][0]["name"] == "b" and figures["worst"][0]["error_pct"] == pytest.approx(25.0)


def test_fit_calibration_learns_from_given_measurements_alone():
    """The pure fitting step: known unit, prefix and network times in, the correction and the
    held-out figures out — no measuring, so a dump can be refitted exactly as calibration fits."""
    import numpy as np
    from autoc.latency.blocks import network_units
    from autoc.latency.calibrate import fit_calibration
    from autoc.latency.device import sample_networks
    from autoc.space import load_space

    sampled = sample_networks(load_space("mbv2-cifar"), 60, seed=3)
    unit_lists = [[u for u in network_units(spec, policy) if u.measurable] for spec, policy in sampled]
    rng = np.random.default_rng(0)
    table = {u.key: float(rng.uniform(0.01, 0.1)) for units in unit_lists for u in units}
    empty = 0.017
    # units cost 0.9x their table time inside a network, which pays one session call (the empty graph)
    in_network = [[0.9 * table[u.key] for u in units] for units in unit_lists]
    network_ms = [empty + sum(times) for times in in_network]
    prefix_ms = [list(empty + np.cumsum(times)[:-1]) for times in in_network[:16]]

    result = fit_calibration(unit_lists, table=table, empty_ms=empty, network_ms=network_ms, fit=40,
                             prefix_ms=prefix_ms, held_out=True)
    validation = result.validation
    assert validation["n"] == 20 and validation["kendall_tau"] == pytest.approx(1.0)
    assert validation["mape_pct"] < 1.0
    assert result.unit_model is not None and result.unit_model.coefficients[0] == pytest.approx(0.9, abs=0.01)
    assert result.correction.scale == pytest.approx(1.0, abs=0.01)
    assert set(validation["without_in_context"]) == {"within_10pct", "mape_pct", "kendall_tau"}
    assert [n["name"] for n in validation["networks"]] == [f"net{i}" for i in range(40, 60)]

    plain = fit_calibration(unit_lists, table=table, empty_ms=empty, network_ms=network_ms, fit=40, held_out=False)
    assert plain.unit_model is None and "without_in_context" not in plain.validation
    assert plain.validation["n"] == 40  # in sample: scored on the fitting networks
    assert plain.correction.scale == pytest.approx(0.9, abs=0.01)  # without the unit model the 0.9 is the scale's
