"""The shipped JSON Schemas: valid documents, in step with the code that writes the files, and
their errors told on one line."""
import json
from dataclasses import MISSING, fields
from importlib import resources

import jsonschema
import pytest

from autoc import schemas
from autoc.latency.energy import EnergyCoefficients
from autoc.latency.in_context import FEATURES
from autoc.latency.profile import _LEGACY_PRIOR, PRIOR_FEATURES, SCHEMA, Correction, DeviceIdentity

SHIPPED = sorted(p.name for p in resources.files("autoc.schemas").iterdir() if p.name.endswith(".schema.json"))


def test_every_file_format_ships_a_schema():
    assert SHIPPED == ["device_profile.schema.json", "model_policy.schema.json", "policy.schema.json"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_schema_is_a_valid_draft_2020_12_schema_named_by_its_version(name):
    schema = schemas.load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    versions = schema["properties"]["schema"]
    # the newest version it admits; a schema that still reads older files lists them before it
    assert schema["$id"] == versions.get("const", versions.get("enum", [None])[-1])


def test_the_device_profile_schema_is_the_version_the_loader_reads():
    assert schemas.load_schema(schemas.DEVICE_PROFILE)["$id"] == SCHEMA


def test_the_device_profile_schema_names_the_fields_the_code_reads():
    properties = schemas.load_schema(schemas.DEVICE_PROFILE)["properties"]
    identity = fields(DeviceIdentity)
    assert properties["identity"]["required"] == [f.name for f in identity if f.default is MISSING]
    assert list(properties["identity"]["properties"]) == [f.name for f in identity]  # the optional ones too
    assert list(properties["correction"]["properties"]) == [f.name for f in fields(Correction)]
    assert list(properties["energy"]["properties"]) == [f.name for f in fields(EnergyCoefficients)]
    assert tuple(properties["prior"]["else"]["properties"]) == PRIOR_FEATURES
    assert tuple(properties["prior"]["then"]["required"]) == _LEGACY_PRIOR
    assert len(FEATURES) > 0 and properties["in_context"]["required"] == ["features", "coefficients"]


@pytest.mark.parametrize(
    "path, text",
    [
        ([], "(top level)"),
        (["identity", "threads"], "identity.threads"),
        (["blocks", "ir-x"], "blocks['ir-x']"),
        (["validation", "worst", 0, "error_pct"], "validation.worst[0].error_pct"),
    ],
)
def test_field_path_dots_plain_names_and_brackets_the_rest(path, text):
    assert schemas.field_path(path) == text


@pytest.mark.parametrize(
    "document, problem",
    [
        ({"blocks": {"ir-x": "fast"}}, "field blocks['ir-x'] must be a time in milliseconds (a number), got a string"),
        ({"identity": {"threads": 1.5}}, "field identity.threads must be a whole number, got a number"),
        ({"correction": {"int8_scale": "x"}}, "field correction.int8_scale must be a number or null, got a string"),
        ({"correction": {"skale": 1}}, "field correction has unknown field(s) ['skale'] (known: ['int8_scale', "),
        ({"energy": {"static_mw": -1}}, "field energy.static_mw = -1 is below the minimum 0"),
        ({"schema": "autoc.device/3"}, "field schema = 'autoc.device/3' must be 'autoc.device/2'"),
        ({"prior": {"ms_per_mmac": 1}}, "field prior.ms_per_melement is missing"),
        ({"validation": {"n": 3, "mape_pct": 1.0}}, "field validation.within_10pct is missing"),
        ({"validation": {"worst": [{"measured_ms": 1, "predicted_ms": 1, "error_pct": "x"}]}},
         "field validation.worst[0].error_pct must be a number, got a string"),
    ],
)
def test_a_schema_error_is_one_line_naming_the_json_path(document, problem):
    valid = {"schema": SCHEMA, "device": "d", "source": "host", "space": {}, "blocks": {}, "correction": {},
             "prior": None, "energy": {}, "validation": {},
             "identity": {f.name: [] if f.name == "precisions" else 0 if f.type == "int" else ""
                          for f in fields(DeviceIdentity) if f.default is MISSING}}
    assert schemas.first_problem(schemas.DEVICE_PROFILE, valid) is None
    for key, value in document.items():
        valid[key] = {**valid[key], **value} if isinstance(value, dict) and valid[key] is not None else value
    found = schemas.first_problem(schemas.DEVICE_PROFILE, json.loads(json.dumps(valid)))
    assert found is not None and found.startswith(problem) and "\n" not in found, found


def test_the_model_policy_schema_is_the_version_compress_writes():
    from autoc.modelspace.policy_file import MODEL_POLICY, SCHEMA as MODEL_SCHEMA

    assert schemas.load_schema(MODEL_POLICY)["$id"] == MODEL_SCHEMA
