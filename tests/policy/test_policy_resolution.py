"""Policy files of spaces that search the input resolution: the file records the candidate's, and
loading it checks it is one of the space's."""
from dataclasses import replace

import pytest
import torch
import yaml

import autoc
from autoc.data.preprocessing import Preprocessing
from autoc.errors import PolicyError
from autoc.policy.file import PolicyFile, space_reference, write_policy
from autoc.space import load_space
from helpers import tiny_candidate

# the tiny candidate's space (tests/helpers.py), searching resolutions 16 and 24
SEARCHED_SPACE = {
    "name": "tiny-res", "resolution": [16, 24], "stem": {"width": [16], "stride": 1}, "head": {"width": [64]},
    "stages": [{"depth": [1], "width": [16], "stride": 1, "blocks": ["k3_e1"]},
               {"depth": [2], "width": [24], "stride": 2, "blocks": ["k3_e6", "k5_e3"]},
               {"depth": [2], "width": [32], "stride": 2, "blocks": ["k7_e3", "skip"]}],
}


def write_at(tmp_path, size: int):
    base = tiny_candidate(keep=1.0, precision="fp32")
    candidate = replace(base, arch=replace(base.arch, input_size=size))
    space_file = tmp_path / "tiny-res.yaml"
    space_file.write_text(yaml.safe_dump(SEARCHED_SPACE))
    policy = PolicyFile(
        candidate=candidate, space=space_reference(load_space(space_file)),
        metrics={"accuracy": 0.5, "latency_ms": 1.0, "size_bytes": 10, "macs": 10, "params": 10},
        device="host", study="s", trial=0, preprocessing=Preprocessing(input_size=size),
    )
    return write_policy(policy, tmp_path / "best_policy.json")


def test_a_candidate_at_one_of_the_spaces_resolutions_loads_and_builds_for_it(tmp_path):
    loaded = autoc.load_policy(write_at(tmp_path, 24))
    assert loaded.candidate.arch.input_size == 24 == loaded.preprocessing.input_size
    assert loaded.build_model()(torch.zeros(1, 3, 24, 24)).shape == (1, 10)


def test_a_candidate_at_another_resolution_is_outside_the_space(tmp_path):
    with pytest.raises(PolicyError, match=r"outside its search space 'tiny-res': input_size 20 is not one of \[16, 24\]"):
        autoc.load_policy(write_at(tmp_path, 20))
