"""A profile that never measures prices only the input resolutions its table has a stem for."""
from dataclasses import replace

import pytest

from autoc.candidate import Candidate
from autoc.errors import DeviceError
from autoc.latency.device import open_device_model
from autoc.space import load_space, random_sampling_study, sample_candidate


def fbnet_candidate(input_size: int) -> Candidate:
    candidate = sample_candidate(load_space("fbnet-cifar"), random_sampling_study(seed=0).ask())
    return replace(candidate, arch=replace(candidate.arch, input_size=input_size))


def test_a_profile_lists_the_resolutions_of_its_tables(tmp_path):
    assert open_device_model("pixel3", runs_dir=tmp_path).profile.resolutions == (32,)


def test_a_candidate_at_a_resolution_the_profile_lacks_is_a_one_line_error_naming_those_it_has(tmp_path):
    model = open_device_model("pixel3", runs_dir=tmp_path)
    assert model.predict(fbnet_candidate(32).netspec(), fbnet_candidate(32).policy) > 0
    candidate = fbnet_candidate(64)
    with pytest.raises(DeviceError) as info:
        model.predict(candidate.netspec(), candidate.policy)
    message = str(info.value)
    assert "input resolutions [32], not for the candidate's 64" in message and "\n" not in message


def test_a_search_of_resolutions_the_device_lacks_stops_in_one_line_before_training(tmp_path, capsys):
    from autoc.cli import main

    code = main(["search", "--space", "ofa-mbv3", "--device", "pixel3", "--budget-ms", "20", "--trials", "1",
                 "--max-train", "20", "--max-val", "10", "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "has tables for input resolutions [32], not for the candidate's 160" in err[-1]
    assert not list((tmp_path / "runs").glob("cache/*"))
