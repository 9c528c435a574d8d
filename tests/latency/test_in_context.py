"""In-context unit model: prefixes, targets, fit, profile round trip, prediction, calibration."""
import json
from dataclasses import replace

import numpy as np
import onnx
import pytest

from autoc.arch.config import BlockOp
from autoc.arch.policy import CompressionPolicy
from autoc.errors import DeviceError
from autoc.latency.blocks import network_units
from autoc.latency.calibrate import calibrate_correction
from autoc.latency.device import sample_networks
from autoc.latency.in_context import (
    FEATURES,
    MIN_UNITS_PER_FEATURE,
    InContextModel,
    fit_in_context,
    in_context_targets,
    prefix_models,
    unit_features,
)
from autoc.latency.measure import measure_onnx
from autoc.latency.model import LookupTableLatencyModel, open_host_model
from autoc.latency.profile import Correction, load_profile, new_host_profile, save_profile
from autoc.space import load_space
from latency_nets import int8_policy, small_net

SPEC = small_net(ops=(BlockOp(3, 3), BlockOp(skip=True), BlockOp(5, 3), BlockOp(3, 6)))
MIXED = int8_policy(SPEC, blocks={"stages.0.2"}, stem=False, head=False)


def ops_of(model: bytes) -> set[str]:
    return {node.op_type for node in onnx.load_from_string(model).graph.node}


def test_one_prefix_per_measured_unit_before_the_head_each_running_its_blocks():
    units = network_units(SPEC, MIXED)
    measurable = [u for u in units if u.measurable]
    assert len(measurable) == len(units) - 1  # the skipped block is not timed
    prefixes = prefix_models(SPEC, MIXED, units)
    assert len(prefixes) == len(measurable) - 1  # stem, 3 blocks; the head ends the whole network
    # the prefix ending with the int8 block (stem, block 0, block 2) carries its QDQ; the earlier ones do not
    assert "DequantizeLinear" not in ops_of(prefixes[1]) and "DequantizeLinear" in ops_of(prefixes[2])
    # each prefix runs: its output is the feature map the next unit takes
    for prefix, following in zip(prefixes, measurable[1:]):
        assert measure_onnx(prefix, input_shape=(1, 3, 16, 16), warmup=0, repeats=1).figure_ms > 0
        session_output = onnx.load_from_string(prefix).graph.output[0].type.tensor_type.shape.dim
        assert [d.dim_value for d in session_output][1] == following.input_shape[1]


def test_targets_telescope_to_the_whole_network():
    units = [u for u in network_units(SPEC, MIXED) if u.measurable]
    prefix_ms = [0.05, 0.09, 0.16, 0.20]
    targets = in_context_targets(units, prefix_ms=prefix_ms, network_ms=0.26, empty_ms=0.01)
    assert targets == pytest.approx([0.04, 0.04, 0.07, 0.04, 0.06])
    assert sum(targets) == pytest.approx(0.26 - 0.01)
    with pytest.raises(ValueError, match="prefix"):
        in_context_targets(units, prefix_ms=prefix_ms[:-1], network_ms=0.26, empty_ms=0.01)


def synthetic_rows(count: int, coefficients: np.ndarray, *, seed: int = 0):
    """Units of random sampled networks with made-up isolated times; targets from ``coefficients``."""
    rng = np.random.default_rng(seed)
    rows = []
    for spec, policy in sample_networks(load_space("mbv2-cifar"), 1 + count // 10, seed=seed):
        previous = None
        for unit in (u for u in network_units(spec, policy) if u.measurable):
            int8 = unit.precision == "int8"
            x = unit_features(unit, isolated_ms=float(rng.uniform(0.01, 0.1)), int8=int8, previous_int8=previous)
            rows.append((x, float(np.dot(coefficients, x)) + float(rng.normal(0, 1e-4))))
            previous = int8
    return rows[:count]


def test_fit_recovers_a_known_unit_model_and_needs_enough_units():
    truth = np.array([0.9, -0.1, 0.002, 0.001, 0.004, -0.01, 0.005, 0.003, 0.001, -0.002, 0.03])
    rows = synthetic_rows(400, truth)
    fitted = fit_in_context(rows)
    assert fitted is not None
    assert np.asarray(fitted.coefficients)[:2] == pytest.approx(truth[:2], abs=0.01)
    predicted = [float(np.dot(fitted.coefficients, x)) for x, _ in rows]
    assert np.max(np.abs(np.array(predicted) - [y for _, y in rows])) < 1e-3
    assert fit_in_context(rows[: MIN_UNITS_PER_FEATURE * len(FEATURES) - 1]) is None
    # in-network time falling as the table time grows is noise, not a model: none
    assert fit_in_context(synthetic_rows(400, truth * np.r_[-1.0, np.ones(len(FEATURES) - 1)])) is None


def table_profile(in_context: InContextModel | None):
    units = [u for u in network_units(SPEC, MIXED) if u.measurable]
    base = new_host_profile(1)
    table = {u.key: 0.01 * (i + 1) for i, u in enumerate(units)}
    return replace(base, device="board", blocks=table, correction=Correction(), in_context=in_context), units


def test_prediction_and_breakdown_use_the_in_context_times():
    halve = InContextModel(coefficients=(0.5,) + (0.0,) * (len(FEATURES) - 1))
    profile, units = table_profile(halve)
    model = LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)
    table_sum = sum(profile.blocks[u.key] for u in units)
    assert model.predict(SPEC, MIXED) == pytest.approx(0.5 * table_sum)
    assert sum(ms for *_, ms in model.breakdown(SPEC, MIXED)) == pytest.approx(model.predict(SPEC, MIXED))
    # a per-switch cost lands once per fp32 <-> int8 switch (two here: into and out of the int8 block)
    switch = InContextModel(coefficients=(1.0,) + (0.0,) * 3 + (0.02,) + (0.0,) * (len(FEATURES) - 5))
    with_switch = LookupTableLatencyModel(replace(profile, in_context=switch), profile_path=None, measure_missing=False)
    assert with_switch.predict(SPEC, MIXED) == pytest.approx(table_sum + 2 * 0.02)
    # a unit never costs less than nothing
    negative = InContextModel(coefficients=(-1.0,) + (0.0,) * (len(FEATURES) - 1))
    assert LookupTableLatencyModel(replace(profile, in_context=negative), profile_path=None,
                                   measure_missing=False).predict(SPEC, MIXED) == 0.0


def test_the_unit_model_round_trips_and_a_bad_one_is_named(tmp_path):
    model = InContextModel(coefficients=tuple(0.1 * i for i in range(len(FEATURES))))
    profile, _ = table_profile(model)
    path = tmp_path / "board.json"
    save_profile(profile, path)
    assert load_profile(path).in_context == model
    data = json.loads(path.read_text())
    data["in_context"]["features"] = list(reversed(FEATURES))
    path.write_text(json.dumps(data))
    with pytest.raises(DeviceError, match="in_context.features"):
        load_profile(path)
    save_profile(replace(profile, in_context=None), path)
    assert "in_context" not in json.loads(path.read_text()) and load_profile(path).in_context is None
    with pytest.raises(ValueError, match="finite"):
        InContextModel(coefficients=(float("nan"),) * len(FEATURES))


def test_a_switch_costs_more_the_larger_the_tensor_it_converts():
    units = [u for u in network_units(SPEC, MIXED) if u.measurable]
    int8_block = next(u for u in units if u.precision == "int8")
    elements = np.prod(int8_block.input_shape[1:]) / 1e5
    switched = unit_features(int8_block, isolated_ms=0.1, int8=True, previous_int8=False)
    same = unit_features(int8_block, isolated_ms=0.1, int8=True, previous_int8=True)
    first = unit_features(int8_block, isolated_ms=0.1, int8=True, previous_int8=None)
    at = FEATURES.index("switch_input_elements_1e5")
    assert switched[at] == pytest.approx(elements) and same[at] == 0.0 and first[at] == 0.0
    assert switched[FEATURES.index("switch")] == 1.0


def test_a_profile_from_before_the_last_feature_loads_and_predicts_as_it_did(tmp_path):
    old_features = list(FEATURES[:10])  # what profiles stored before switch_input_elements_1e5
    old = {"features": old_features, "coefficients": [0.9, -0.1] + [0.001] * 8}
    model = InContextModel.from_dict(old)
    assert model.coefficients == tuple(old["coefficients"]) + (0.0,) * (len(FEATURES) - 10)
    profile, _ = table_profile(model)
    path = tmp_path / "board.json"
    save_profile(profile, path)
    data = json.loads(path.read_text())
    data["in_context"] = old  # as an older autoc wrote it
    path.write_text(json.dumps(data))
    loaded = LookupTableLatencyModel(load_profile(path), profile_path=None, measure_missing=False)
    assert loaded.predict(SPEC, MIXED) == pytest.approx(
        LookupTableLatencyModel(profile, profile_path=None, measure_missing=False).predict(SPEC, MIXED))
    for bad in ({"features": old_features[:9], "coefficients": [0.1] * 9},  # older than any autoc wrote
                {"features": old_features, "coefficients": [0.1] * 11}):  # counts disagree
        data["in_context"] = bad
        path.write_text(json.dumps(data))
        with pytest.raises(DeviceError, match="in_context"):
            load_profile(path)


def test_calibration_learns_the_unit_model_from_prefixes(tmp_path):
    host_model = open_host_model(tmp_path / "host.json")
    nets = sample_networks(load_space("mbv2-cifar"), 8, seed=3)
    profile = calibrate_correction(host_model, nets[:7], held_out=nets[7:], warmup=1, repeats=5)
    assert profile.in_context is not None
    assert profile.validation["in_context_units"] >= MIN_UNITS_PER_FEATURE * len(FEATURES)
    assert load_profile(host_model.profile_path).in_context == profile.in_context
    # the same held-out networks predicted without the unit model are recorded beside, for comparison
    assert set(profile.validation["without_in_context"]) == {"within_10pct", "mape_pct", "kendall_tau"}
    # the saved prediction is what the model now predicts
    spec, policy = nets[7]
    assert host_model.predict(spec, policy) == pytest.approx(profile.validation["networks"][0]["predicted_ms"], abs=1e-4)
    # without prefixes (or too few units) the profile has none and predicts from the table as before
    plain = calibrate_correction(open_host_model(tmp_path / "plain.json"), nets[:2], warmup=1, repeats=3,
                                 in_context=False)
    assert plain.in_context is None and plain.validation["in_context_units"] == 0
    assert "without_in_context" not in plain.validation
