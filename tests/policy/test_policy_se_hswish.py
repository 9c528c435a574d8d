"""Policy files of candidates with per-stage activations and squeeze-excite."""
import json

import jsonschema
import pytest
import torch

import autoc
from autoc.arch.builder import build_model
from autoc.errors import PolicyError
from autoc.policy.file import PolicyFile, space_reference, write_policy
from autoc.policy.schema import policy_schema
from autoc.space import load_space
from helpers import se_candidate

METRICS = {"accuracy": 0.5, "latency_ms": 1.25, "size_bytes": 1000, "macs": 20000, "params": 3000}
SE_ARCH_SPACE = """
name: se-arch
input_size: 16
activation: relu
stem: {width: [16], stride: 1}
stages:
  - {depth: [1], width: [16], stride: 1, blocks: [k3_e1], se: true}
  - {depth: [2], width: [24], stride: 2, blocks: [k3_e6, k5_e3], activation: hswish, se: true}
  - {depth: [2], width: [32], stride: 2, blocks: [k7_e3, skip], activation: hswish, se: true, se_ratio: 0.5}
head: {width: [64]}
compression: {keep_ratio: [0.5, 1.0], precision: [fp32, int8], weight_bits: [8, 4]}
"""


def _write(tmp_path, space_text):
    candidate = se_candidate(keep=0.5)
    model = build_model(candidate.netspec(), seed=0).eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    space_file = tmp_path / "se-arch.yaml"
    space_file.write_text(space_text)
    policy = PolicyFile(candidate=candidate, space=space_reference(load_space(space_file)), metrics=METRICS,
                        device="host", study="s", trial=1, weights="w.pt")
    return write_policy(policy, tmp_path / "best_policy.json"), model


def test_an_se_hswish_policy_file_round_trips_and_validates(tmp_path):
    path, model = _write(tmp_path, SE_ARCH_SPACE)
    data = json.loads(path.read_text())
    jsonschema.Draft202012Validator(policy_schema()).validate(data)
    assert data["arch"]["stages"][1]["activation"] == "hswish" and data["arch"]["stages"][1]["se"] is True
    assert not any(".se" in name for name in data["policy"])
    rebuilt = autoc.load_policy(path).build_model()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


def test_a_candidate_with_se_is_outside_a_space_without_it(tmp_path):
    path, _ = _write(tmp_path, SE_ARCH_SPACE.replace(", se: true, se_ratio: 0.5}", "}"))
    with pytest.raises(PolicyError, match="stage 2 se"):
        autoc.load_policy(path)
