import logging
import time
from dataclasses import replace

import pytest

import autoc.latency.model as model_module
from autoc.arch.config import BlockOp
from autoc.compress.policy import CompressionPolicy
from autoc.errors import DeviceError
from autoc.latency.model import LatencyModel, LookupTableLatencyModel, open_host_model
from autoc.latency.profile import load_profile, matches_host, save_profile
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
