import json
from dataclasses import replace

import pytest

from autoc.errors import DeviceError
from autoc.latency.in_context import FEATURES, InContextModel
from autoc.latency.profile import (
    SCHEMA,
    Correction,
    DeviceProfile,
    UnitPrior,
    data_identity,
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
        (json.dumps({"schema": SCHEMA, "device": "host"}), r"field identity is missing \(and 7 more problems\)"),
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


@pytest.mark.parametrize(
    "profile",
    [
        replace(sample_profile(), correction=Correction(scale=0.9, intercept_ms=0.1, ms_per_transition=0.01, int8_scale=0.8),
                prior=UnitPrior({"fp32_mmac": 0.1, "int8_dw_k5_mmac": 0.2}),
                in_context=InContextModel(coefficients=tuple(0.5 for _ in FEATURES))),
        DeviceProfile(device="pixel3", identity=data_identity("published data", created="t"), blocks={"ir-x": 0.0},
                      source="networks", space={"name": "fbnet-cifar", "fingerprint": "0" * 64},
                      prior=UnitPrior.uniform(ms_per_mmac=0.1, ms_per_melement=0.2, ms_per_unit=0.3),
                      validation={"n": 0, "within_10pct": None, "mape_pct": None, "kendall_tau": None, "worst": []}),
    ],
    ids=["host-with-every-part", "from-data"],
)
def test_every_part_a_profile_may_hold_validates_and_round_trips(tmp_path, profile):
    path = tmp_path / "p.json"
    save_profile(profile, path)
    assert load_profile(path) == profile


def test_profiles_written_before_newer_fields_still_load(tmp_path):
    path = tmp_path / "old.json"
    data = sample_profile().to_dict()
    data["correction"] = {"scale": 0.9, "intercept_ms": 0.1}
    data["prior"] = {"ms_per_mmac": 0.1, "ms_per_melement": 0.2, "ms_per_unit": 0.3}
    data["in_context"] = {"features": list(FEATURES[:10]), "coefficients": [0.5] * 10}
    path.write_text(json.dumps(data))
    profile = load_profile(path)
    assert profile.prior == UnitPrior.uniform(ms_per_mmac=0.1, ms_per_melement=0.2, ms_per_unit=0.3)
    assert profile.in_context.coefficients[10:] == (0.0,) * (len(FEATURES) - 10)


def test_profiles_written_before_the_int8_weight_scheme_measured_int8_weights(tmp_path):
    path = tmp_path / "old.json"
    data = sample_profile().to_dict()
    del data["identity"]["int8_weights"]
    path.write_text(json.dumps(data))
    assert load_profile(path).identity.int8_weights == "int8"
    data["identity"]["int8_weights"] = "int4"
    path.write_text(json.dumps(data))
    with pytest.raises(DeviceError, match="int8_weights"):
        load_profile(path)


def test_an_invalid_field_is_one_line_naming_its_json_path_and_the_fix(tmp_path):
    path = tmp_path / "host.json"
    data = sample_profile().to_dict()
    data["validation"]["worst"] = [{"measured_ms": 1.0, "predicted_ms": 1.1, "error_pct": "ten"}]
    path.write_text(json.dumps(data, indent=1))
    with pytest.raises(DeviceError) as err:
        load_profile(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"device profile {path}: field validation.worst[0].error_pct must be a number, got a string; ")
    assert "correct the field in the file, or delete the file to recalibrate" in message


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
    # measured with the other int8 kernels: not this host's numbers
    other = "int8" if profile.identity.int8_weights == "uint8" else "uint8"
    assert not matches_host(replace(profile, identity=replace(profile.identity, int8_weights=other)), 1)
    # the timestamp is a record, not a condition
    assert matches_host(replace(profile, identity=replace(profile.identity, created="2000-01-01T00:00:00+00:00")), 1)


def test_host_identity_records_the_runtime():
    identity = host_identity(2)
    assert identity.threads == 2 and identity.runtime == "onnxruntime"
    assert identity.runtime_version and identity.cpu_model and identity.logical_cores >= 1
