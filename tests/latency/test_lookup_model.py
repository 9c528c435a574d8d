import logging
import time
from dataclasses import replace

import pytest

import autoc.latency.model as model_module
from autoc.arch.config import BlockOp
from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.errors import DeviceError
from autoc.latency.blocks import network_units, unit_work
from autoc.latency.model import LatencyModel, LookupTableLatencyModel, open_host_model
from autoc.latency.profile import Correction, UnitPrior, load_profile, matches_host, save_profile
from latency_nets import int8_policy, small_net

FP32 = CompressionPolicy()


@pytest.fixture()
def measure_calls(monkeypatch):
    """Records the keys of every measure_units batch the model asks for."""
    calls: list[list[str]] = []
    real = model_module.measure_units

    def counting(units, **kw):
        units = list(units)
        calls.append([u.key for u in units])
        return real(units, **kw)

    monkeypatch.setattr(model_module, "measure_units", counting)
    return calls


def test_lazy_measurement_fills_and_persists_the_table(tmp_path, measure_calls):
    path = tmp_path / "host.json"
    spec = small_net()
    model = open_host_model(path)
    assert isinstance(model, LatencyModel)
    first = model.predict(spec, FP32)
    assert len(measure_calls) == 1 and len(measure_calls[0]) == 4  # one batch: stem, 2 blocks, head
    assert first > 0
    assert model.predict(spec, FP32) == first and len(measure_calls) == 1
    # a new process reuses the saved table
    again = open_host_model(path)
    assert again.predict(spec, FP32) == first and len(measure_calls) == 1
    # a different precision is new units, measured on demand
    again.predict(spec, int8_policy(spec))
    assert len(measure_calls) == 2 and all(k.endswith("-int8") for k in measure_calls[1])
    assert len(load_profile(path).blocks) == 8


def test_breakdown_sums_to_prediction(host_model):
    spec = small_net(stride=1, ops=(BlockOp(3, 3), BlockOp(skip=True)))
    rows = host_model.breakdown(spec, FP32)
    assert [r[0] for r in rows] == ["stem", "stages.0.0", "stages.0.1", "head", "overhead"]
    assert rows[2][1:] == ("identity", 0.0)
    assert sum(r[2] for r in rows) == pytest.approx(host_model.predict(spec, FP32))


def test_warm_prediction_is_cheap(host_model):
    spec, policy = small_net(), int8_policy(small_net())
    host_model.predict(spec, policy)
    start = time.perf_counter()
    for _ in range(200):
        host_model.predict(spec, policy)
    assert (time.perf_counter() - start) / 200 < 1e-3


def test_foreign_profile_with_missing_block_raises(host_model, tmp_path):
    spec = small_net()
    host_model.predict(spec, FP32)
    phone = replace(host_model.profile, device="pixel7")
    path = tmp_path / "pixel7.json"
    save_profile(phone, path)
    model = LookupTableLatencyModel(load_profile(path), profile_path=path, measure_missing=False)
    assert model.predict(spec, FP32) == host_model.predict(spec, FP32)  # known blocks: fine
    bigger = small_net(width=40)
    missing = (
        r"no measurement for unit 'stages\.0\.0' "
        r"\(key ir-r16-c16-k1s1o48g1-k3s2o48gdw-k1s1o40g1lin-\S+, and 2 more\)"
    )
    with pytest.raises(DeviceError, match=missing) as err:
        model.predict(bigger, FP32)
    assert str(path) in str(err.value) and "pixel7" in str(err.value)


def test_measuring_into_a_foreign_profile_is_refused(host_model):
    other = replace(host_model.profile, identity=replace(host_model.profile.identity, runtime_version="0.1"))
    with pytest.raises(DeviceError, match="mix machines"):
        LookupTableLatencyModel(other, profile_path=None, measure_missing=True)


def test_host_profile_from_other_runtime_is_replaced_after_a_warning(tmp_path, caplog, measure_calls):
    path = tmp_path / "host.json"
    model = open_host_model(path)
    model.predict(small_net(), FP32)
    stale = replace(model.profile, identity=replace(model.profile.identity, runtime_version="0.1"))
    save_profile(stale, path)
    with caplog.at_level(logging.WARNING, logger="autoc.latency"):
        fresh = open_host_model(path)
    assert "runtime_version" in caplog.text and str(path) in caplog.text
    assert fresh.profile.blocks == {}
    fresh.predict(small_net(), FP32)
    assert len(measure_calls) == 2  # nothing reused from the stale table
    saved = load_profile(path)
    assert matches_host(saved, 1) and len(saved.blocks) == 4


def test_open_host_model_refuses_other_devices_and_corrupt_files(tmp_path, host_model):
    path = tmp_path / "host.json"
    save_profile(replace(host_model.profile, device="pixel7"), path)
    with pytest.raises(DeviceError, match="pixel7"):
        open_host_model(path)
    path.write_text("{")
    with pytest.raises(DeviceError, match="delete it"):
        open_host_model(path)


def test_parallel_writers_keep_each_others_blocks(tmp_path):
    path = tmp_path / "host.json"
    a, b = open_host_model(path), open_host_model(path)
    a.predict(small_net(), FP32)
    b.predict(small_net(width=24), FP32)
    saved = load_profile(path)
    assert set(a.profile.blocks) <= set(saved.blocks) and set(b.profile.blocks) <= set(saved.blocks)


def test_weight_bits_below_8_do_not_change_latency(host_model):
    from latency_nets import INT8

    spec = small_net()
    four_bit = LayerPolicy(precision="int8", weight_bits=4, act_bits=8)
    names = [*spec.layer_names()]
    eight = CompressionPolicy.from_mapping({n: INT8 for n in names})
    four = CompressionPolicy.from_mapping({n: four_bit for n in names})
    assert host_model.predict(spec, four) == host_model.predict(spec, eight) != host_model.predict(spec, FP32)


def test_device_without_int8_kernels_runs_int8_at_fp32_time(host_model, caplog):
    spec = small_net()
    host_model.predict(spec, FP32)
    fp32_only = replace(
        host_model.profile,
        device="m0",
        identity=replace(host_model.profile.identity, precisions=("fp32",)),
        blocks={k: v for k, v in host_model.profile.blocks.items() if k.endswith("-fp32")},
    )
    model = LookupTableLatencyModel(fp32_only, profile_path=None, measure_missing=False)
    with caplog.at_level(logging.WARNING, logger="autoc.latency"):
        assert model.predict(spec, int8_policy(spec)) == model.predict(spec, FP32)
    assert "no int8 kernels" in caplog.text


def test_prior_costs_units_the_table_lacks(host_model):
    spec = small_net()
    prior = UnitPrior.uniform(ms_per_mmac=0.5, ms_per_melement=0.0, ms_per_unit=0.01)
    profile = replace(host_model.profile, device="phone", blocks={}, prior=prior, correction=Correction(1.0, 0.1))
    model = LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)
    units = [u for u in network_units(spec, FP32) if u.measurable]
    expected = sum(0.5 * unit_work(u)[0] / 1e6 + 0.01 for u in units) + 0.1
    assert model.predict(spec, FP32) == pytest.approx(expected)


def test_correction_scales_units_and_adds_the_intercept(host_model):
    spec = small_net()
    base = host_model.blocks_ms(spec, FP32)
    profile = replace(host_model.profile, correction=Correction(scale=0.9, intercept_ms=0.05))
    model = LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)
    assert model.predict(spec, FP32) == pytest.approx(0.9 * base + 0.05)
    assert sum(ms for _, _, ms in model.breakdown(spec, FP32)) == pytest.approx(model.predict(spec, FP32))


def test_host_profile_of_an_older_schema_is_replaced(tmp_path, caplog):
    path = tmp_path / "host.json"
    path.write_text('{"schema": "autoc.device/1", "device": "host"}')
    with caplog.at_level(logging.WARNING, logger="autoc.latency"):
        model = open_host_model(path)
    assert "autoc.device/1" in caplog.text and model.profile.blocks == {}


def test_low_bit_kernels_only_where_the_profile_has_them(host_model):
    spec = small_net()
    four_bit = LayerPolicy(precision="int8", weight_bits=4, act_bits=8)
    policy = CompressionPolicy.from_mapping({n: four_bit for n in spec.layer_names()})
    int8_ms = host_model.predict(spec, policy)
    block = network_units(spec, policy)[1]
    identity = replace(host_model.profile.identity, precisions=("fp32", "int8", "int4"))
    with_int4 = replace(host_model.profile, device="npu", identity=identity)
    table = {**with_int4.blocks, block.key.removesuffix("-int8") + "-int4": 0.0}
    model = LookupTableLatencyModel(replace(with_int4, blocks=table), profile_path=None, measure_missing=False)
    saved = host_model.profile.blocks[block.key] * host_model.profile.correction.scale
    assert model.predict(spec, policy) == pytest.approx(int8_ms - saved)
    # without int4 table entries the int8 time applies
    model = LookupTableLatencyModel(with_int4, profile_path=None, measure_missing=False)
    assert model.predict(spec, policy) == pytest.approx(int8_ms)
