import json
from dataclasses import replace

import pytest

from autoc.errors import DeviceError
from autoc.latency.profile import (
    SCHEMA,
    Correction,
    DeviceProfile,
    host_identity,
    load_profile,
    matches_host,
    new_host_profile,
    save_profile,
)


def sample_profile() -> DeviceProfile:
    return replace(
        new_host_profile(1).with_blocks({"stem-r16-c3-k3s1o16g1-relu6-fp32": 0.012, "ir-x": 0.5}),
        correction=Correction(scale=0.93, intercept_ms=-0.03),
        validation={"within_10pct": 0.75, "networks": [{"measured_ms": 1.0, "predicted_ms": 1.1}]},
    )


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "sub" / "host.json"
    profile = sample_profile()
    save_profile(profile, path)
    assert load_profile(path) == profile
    assert json.loads(path.read_text())["schema"] == SCHEMA
    assert [p.name for p in path.parent.iterdir()] == ["host.json"]  # no temp file left behind


def test_save_replaces_atomically(tmp_path):
    path = tmp_path / "host.json"
    save_profile(sample_profile(), path)
    save_profile(new_host_profile(1), path)
    assert load_profile(path).blocks == {}


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON.*delete it"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"schema": "autoc.device/0"}), "schema 'autoc.device/0'.*autoc calibrate"),
        (json.dumps({"schema": SCHEMA, "device": "host"}), "lacks the field"),
    ],
)
def test_bad_profiles_are_device_errors_naming_the_file(tmp_path, text, match):
    path = tmp_path / "host.json"
    path.write_text(text)
    with pytest.raises(DeviceError, match=match) as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_malformed_block_value(tmp_path):
    path = tmp_path / "host.json"
    data = sample_profile().to_dict()
    data["blocks"]["ir-x"] = "fast"
    path.write_text(json.dumps(data))
    with pytest.raises(DeviceError, match=r"field blocks\['ir-x'\] must be a time in milliseconds \(a number\), got a string"):
        load_profile(path)


def test_missing_profile(tmp_path):
    with pytest.raises(DeviceError, match="no device profile.*autoc calibrate"):
        load_profile(tmp_path / "absent.json")


def test_matches_host():
    profile = new_host_profile(1)
    assert matches_host(profile, 1)
    assert not matches_host(profile, 2)
    assert not matches_host(replace(profile, identity=replace(profile.identity, runtime_version="0.0.1")), 1)
    assert not matches_host(replace(profile, identity=replace(profile.identity, cpu_model="Other CPU")), 1)
    assert not matches_host(replace(profile, device="pixel7"), 1)
    # the timestamp is a record, not a condition
    assert matches_host(replace(profile, identity=replace(profile.identity, created="2000-01-01T00:00:00+00:00")), 1)


def test_host_identity_records_the_runtime():
    identity = host_identity(2)
    assert identity.threads == 2 and identity.runtime == "onnxruntime"
    assert identity.runtime_version and identity.cpu_model and identity.logical_cores >= 1
