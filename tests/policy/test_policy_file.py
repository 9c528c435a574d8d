"""Policy files: round trip, the shipped JSON Schema, and the checks that need the architecture or the space."""
import json

import pytest
import torch

import autoc
from autoc.arch.builder import build_model
from autoc.compress.quant import apply_quantization
from autoc.data.preprocessing import Preprocessing
from autoc.errors import PolicyError
from autoc.policy.file import PolicyFile, space_reference, write_policy
from autoc.policy.schema import field_path, policy_schema
from autoc.space import load_space
from helpers import tiny_candidate

PREPROCESSING = Preprocessing(input_size=16, colour="grey", pixel_max=16.0, antialias=False,
                              mean=(0.3, 0.3, 0.3), std=(0.4, 0.4, 0.4), class_names=tuple("0123456789"))
METRICS = {"accuracy": 0.5, "latency_ms": 1.25, "size_bytes": 1000, "macs": 20000, "params": 3000}
# A space holding the tiny candidate (tests/helpers.py): a policy file's candidate must be in its space.
TINY_ARCH_SPACE = """
name: tiny-arch
input_size: 16
activation: relu6
stem: {width: [16], stride: 1}
stages:
  - {depth: [1], width: [16], stride: 1, blocks: [k3_e1], per_block: true}
  - {depth: [2], width: [24], stride: 2, blocks: [k3_e6, k5_e3], per_block: true}
  - {depth: [2], width: [32], stride: 2, blocks: [k7_e3, skip], per_block: true}
head: {width: [64]}
compression: {keep_ratio: [0.5, 1.0], precision: [fp32, int8], weight_bits: [8, 4]}
"""


@pytest.fixture()
def policy_path(tmp_path):
    """A valid policy file for a tiny int8, half-pruned candidate, with its weights beside it."""
    candidate = tiny_candidate(keep=0.5, precision="int8", bits=4)
    model = apply_quantization(build_model(candidate.netspec()), candidate.policy).eval()
    model(torch.randn(2, 3, 16, 16))  # calibrate the fake quantisers, as fine-tuning would
    torch.save(model.state_dict(), tmp_path / "w.pt")
    space_file = tmp_path / "tiny-arch.yaml"
    space_file.write_text(TINY_ARCH_SPACE)
    policy = PolicyFile(
        candidate=candidate, space=space_reference(load_space(space_file)), metrics=METRICS,
        device="host", study="s", trial=3, weights="w.pt", preprocessing=PREPROCESSING,
    )
    return write_policy(policy, tmp_path / "best_policy.json"), model


def edited(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_round_trip_rebuilds_the_same_model(policy_path):
    path, model = policy_path
    loaded = autoc.load_policy(path)
    assert loaded.trial == 3 and loaded.metrics == METRICS and loaded.space["name"] == "tiny-arch"
    rebuilt = loaded.build_model()
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    assert rebuilt.stem.conv.out_channels == 8  # pruned to half of 16, physically
    assert json.loads(path.read_text()) == loaded.to_dict() | {"weights": "w.pt"}


def test_written_file_validates_against_the_shipped_schema(policy_path):
    import jsonschema

    path, _ = policy_path
    jsonschema.Draft202012Validator(policy_schema()).validate(json.loads(path.read_text()))
    assert policy_schema()["properties"]["schema"]["enum"] == ["autoc.policy/1", "autoc.policy/2"]
    assert json.loads(path.read_text())["schema"] == "autoc.policy/2"


def test_preprocessing_round_trips_through_the_file(policy_path):
    path, _ = policy_path
    loaded = autoc.load_policy(path)
    assert loaded.preprocessing == PREPROCESSING
    assert json.loads(path.read_text())["preprocessing"]["resize"] == {
        "method": "bilinear", "size": 16, "fit": "shorter-side-then-centre-crop", "antialias": False,
        "align_corners": False}


def test_version_1_file_still_loads_without_preprocessing(policy_path):
    path, model = policy_path

    def to_version_1(data):
        data["schema"] = "autoc.policy/1"
        del data["preprocessing"]

    loaded = autoc.load_policy(edited(path, to_version_1))
    assert loaded.preprocessing is None
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(loaded.build_model()(x), model(x), rtol=0, atol=0)


def test_version_1_file_with_preprocessing_is_refused(policy_path):
    path, _ = policy_path
    with pytest.raises(PolicyError, match="schema 'autoc.policy/1' has no preprocessing; set schema to 'autoc.policy/2'"):
        autoc.load_policy(edited(path, lambda data: data.update(schema="autoc.policy/1")))


def test_preprocessing_of_another_input_size_is_refused(policy_path):
    path, _ = policy_path
    with pytest.raises(PolicyError, match=r"preprocessing.input_size: 32 differs .* input_size 16; re-export"):
        autoc.load_policy(edited(path, lambda data: data["preprocessing"].update(input_size=32)))


def test_preprocessing_with_a_mean_per_wrong_channel_count_is_refused(policy_path):
    path, _ = policy_path
    with pytest.raises(PolicyError, match="field preprocessing: .*one mean and std per channel"):
        autoc.load_policy(edited(path, lambda data: data["preprocessing"].update(mean=[0.1, 0.2])))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(schema="autoc.policy/3"), "another version of the policy format"),
        (lambda d: d.pop("schema"), "no 'schema' field"),
        (lambda d: d.pop("metrics"), "'metrics' is a required property"),
        (lambda d: d["policy"]["stem"].update(keep_ratio=0), r'field policy.stem.keep_ratio: 0 is less than or equal to the minimum of 0'),
        (lambda d: d["policy"]["stages.1.0.dw"].update(keep_ratio=1.5), r'field policy\["stages.1.0.dw"\].keep_ratio: 1.5 is greater than the maximum of 1'),
        (lambda d: d["policy"]["stem"].update(precision="int4"), r"field policy.stem.precision: 'int4' is not one of"),
        (lambda d: d["policy"]["stem"].update(bits=4), r"field policy.stem: unknown key\(s\) \['bits'\]"),
        (lambda d: d["policy"].update({"stages.9.9.dw": {}}), r"layer\(s\) \['stages.9.9.dw'\] are not layers of the file's architecture"),
        (lambda d: d["policy"].update({"classifier": {}}), "layer name 'classifier' is not a layer name"),
        (lambda d: d["arch"]["stages"][0].update(stride=3), r"field arch.stages\[0\].stride: 3 is not one of \[1, 2\]"),
        (lambda d: d["policy"]["stages.1.0.project"].update(keep_ratio=1.0), "give tied layers the same keep_ratio"),
        (lambda d: d["space"].update(name="no-such-space", source="/nowhere/x.yaml"), "search space 'no-such-space' is not installed"),
        (lambda d: d["space"].update(fingerprint="0" * 64), "has changed since the policy was found"),
        (lambda d: d.update(extra=1), r"unknown key\(s\) \['extra'\]"),
    ],
)
def test_malformed_policies_are_rejected_naming_the_field(policy_path, change, message):
    path, _ = policy_path
    with pytest.raises(PolicyError, match=message) as info:
        autoc.load_policy(edited(path, change))
    assert str(path) in str(info.value)


def test_not_json_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "autoc.policy/1",\n  oops}')
    with pytest.raises(PolicyError, match="line 2, column 3: not valid JSON"):
        autoc.load_policy(bad)
    with pytest.raises(PolicyError, match="does not exist"):
        autoc.load_policy(tmp_path / "absent.json")


def test_space_check_can_be_skipped_and_sparsity_is_accepted(policy_path):
    path, _ = policy_path
    edited(path, lambda d: d["space"].update(name="elsewhere", fingerprint="f" * 64))
    edited(path, lambda d: d["policy"]["stem"].update(sparsity=0.5))
    loaded = autoc.load_policy(path, check_space=False)
    assert loaded.candidate.policy.get("stem").sparsity == 0.5
    with pytest.raises(PolicyError, match="sparsity"):
        autoc.load_policy(edited(path, lambda d: d["policy"]["stem"].update(sparsity=1.0)), check_space=False)


def test_weights_that_do_not_fit_are_a_policy_error(policy_path, tmp_path):
    path, _ = policy_path
    torch.save({"stem.conv.weight": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(PolicyError, match="does not fit the policy's model"):
        autoc.load_policy(path).build_model()
    assert autoc.load_policy(path).build_model(weights=None).stem.conv.out_channels == 8


def test_truncated_weights_are_named_corrupt(policy_path, tmp_path):
    path, _ = policy_path
    weights = tmp_path / "w.pt"
    torch.save(autoc.load_policy(path).build_model(weights=None).state_dict(), weights)
    weights.write_bytes(weights.read_bytes()[:50])  # a copy cut short
    with pytest.raises(PolicyError, match=r"w\.pt is corrupt or truncated.*export another trial"):
        autoc.load_policy(path).build_model(weights=weights)


def test_field_path():
    assert field_path(["policy", "stages.0.0.dw", "keep_ratio"]) == 'policy["stages.0.0.dw"].keep_ratio'
    assert field_path(["arch", "stages", 2, "ops", 0]) == "arch.stages[2].ops[0]"
    assert field_path([]) == "(top level)"


@pytest.mark.parametrize("change, message", [
    (lambda data: data["policy"].pop("stages.1.0.expand"), "['stages.1.0.expand'] of the file's architecture have no entry"),
    (lambda data: data["arch"].update(stem_width=17), "outside its search space 'tiny-arch': stem width 17 is not one of [16]"),
    (lambda data: data["policy"]["head"].update(keep_ratio=0.25), "layer head keep_ratio 0.25 is not one of [0.5, 1.0]"),
], ids=["layer-missing", "stem-width-17", "keep-ratio-not-in-space"])
def test_a_hand_edited_policy_file_is_refused_by_the_cli_in_one_line(policy_path, tmp_path, capsys, change, message):
    from autoc.cli import main

    path = edited(policy_path[0], change)
    before = path.read_bytes()
    code = main(["latency", "predict", str(path), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert path.read_bytes() == before and not (tmp_path / "runs").exists()


def test_a_network_without_head_conv_loads_without_a_head_entry_as_the_search_writes_it(policy_path, tmp_path):
    path, _ = policy_path
    (tmp_path / "tiny-arch.yaml").write_text(TINY_ARCH_SPACE.replace("head: {width: [64]}", "head: {width: [0, 64]}"))

    def no_head(data):
        data["arch"]["head_width"] = 0
        data["policy"].pop("head")  # the search's policy has no head entry when it picks no head conv
        data["space"]["fingerprint"] = load_space(tmp_path / "tiny-arch.yaml").fingerprint()

    loaded = autoc.load_policy(edited(path, no_head))
    model = loaded.build_model(weights=None)
    assert model.head is None and model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    with pytest.raises(PolicyError, match=r"\['stages.1.0.expand'\] of the file's architecture have no entry"):
        autoc.load_policy(edited(path, lambda d: d["policy"].pop("stages.1.0.expand")))
