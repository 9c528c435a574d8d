"""Input resolution as a searched dimension: ``resolution: [..]`` in a space, carried by each candidate."""
import pytest

from autoc.cli import main
from autoc.errors import SpaceError
from autoc.space import candidate_from_params, parse_space, random_sampling_study, sample_candidate
from autoc.space.params import parameter_plan, search_distributions

RESOLUTIONS = [16, 24, 32]


def searched(small_space):
    del small_space["input_size"]
    small_space["resolution"] = list(RESOLUTIONS)
    return small_space


def test_a_resolution_list_is_a_trial_parameter_and_input_size_is_not(small_space):
    assert "resolution" not in search_distributions(parse_space(dict(small_space)))
    space = parse_space(searched(small_space))
    assert space.resolutions == tuple(RESOLUTIONS)
    assert search_distributions(space)["resolution"].choices == tuple(RESOLUTIONS)
    assert parameter_plan(space)[0].name == "resolution"


def test_candidates_carry_their_sampled_resolution_into_the_network_plan(small_space):
    space = parse_space(searched(small_space))
    study = random_sampling_study(seed=0)
    seen = set()
    for _ in range(30):
        trial = study.ask()
        candidate = sample_candidate(space, trial)
        assert candidate.arch.input_size == trial.params["resolution"]
        assert candidate.netspec().input_size == candidate.arch.input_size
        assert candidate_from_params(space, trial.params) == candidate
        seen.add(candidate.arch.input_size)
    assert seen == set(RESOLUTIONS)


def test_the_extremes_take_the_smallest_and_largest_resolution(small_space):
    space = parse_space(searched(small_space))
    assert space.largest_arch().input_size == 32 == space.input_size
    assert {c.arch.input_size for c in space.minimal_candidates()} == {16}
    assert {c.arch.input_size for c in space.maximal_candidates()} == {32}


def test_a_searched_space_round_trips_and_one_resolution_is_the_same_as_input_size(small_space):
    plain = parse_space(dict(small_space))
    space = parse_space(searched(dict(small_space)))
    assert parse_space(space.to_dict()) == space
    assert space.fingerprint() != plain.fingerprint()
    one = dict(small_space, resolution=[32])
    del one["input_size"]
    assert parse_space(one).fingerprint() == plain.fingerprint()


def test_trial_params_without_the_resolution_are_from_another_space(small_space):
    space = parse_space(searched(small_space))
    params = random_sampling_study(seed=1).ask(search_distributions(space)).params
    del params["resolution"]
    with pytest.raises(SpaceError, match="trial params lack 'resolution'"):
        candidate_from_params(space, params)


@pytest.mark.parametrize(
    "value, message",
    [
        ([], "resolution: the choice list is empty"),
        ([160, 0], "resolution: 0 is not allowed; use an integer >= 1"),
        ([-1], "resolution: -1 is not allowed; use an integer >= 1"),
        ([160, 160], "resolution: choice 160 is listed twice"),
        ([160.0], "resolution: 160.0 is not allowed"),
    ],
)
def test_bad_resolution_lists_are_one_line_errors(small_space, value, message):
    data = searched(small_space)
    data["resolution"] = value
    with pytest.raises(SpaceError) as info:
        parse_space(data, source="s.yaml")
    assert f"s.yaml: {message}" in str(info.value) and "\n" not in str(info.value)


def test_resolution_with_input_size_or_neither_is_a_one_line_error(small_space):
    with pytest.raises(SpaceError, match="resolution: cannot be combined with 'input_size'"):
        parse_space(dict(small_space, resolution=[16, 32]))
    del small_space["input_size"]
    with pytest.raises(SpaceError, match="input_size: required key 'input_size' is missing .* resolution: "):
        parse_space(small_space)


def run_search(path, tmp_path, *flags) -> int:
    return main(["search", "--space", str(path), "--budget-ms", "20", "--trials", "1",
                 "--runs-dir", str(tmp_path / "runs"), *flags])


def test_the_command_line_reports_a_bad_resolution_in_one_line_with_exit_2(small_space, write_space, tmp_path, capsys):
    data = searched(small_space)
    data["resolution"] = [16, 16]
    assert run_search(write_space(data), tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert "resolution: choice 16 is listed twice" in err and len(err.splitlines()) == 1

