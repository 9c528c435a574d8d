"""Shipped spaces, name resolution, canonical form and fingerprints."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import autoc
from autoc.errors import SpaceError
from autoc.space import available_spaces, load_space, parse_space
from autoc.space.loader import shipped_dir

SHIPPED = ["mbv2-cifar", "fbnet-cifar", "ofa-mbv3", "mbv2-imagenet"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_loads_by_name_and_path(name):
    by_name = load_space(name)
    assert by_name.name == name
    assert by_name == load_space(shipped_dir() / f"{name}.yaml")
    assert name in available_spaces()


def test_shipped_spaces_live_inside_the_package():
    # package data, so a wheel carries them: not a folder beside the package
    assert shipped_dir().parent == Path(autoc.__file__).parent / "space"
    assert sorted(p.stem for p in shipped_dir().glob("*.yaml")) == sorted(SHIPPED)


def test_every_shipped_space_loads_by_name_from_another_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert available_spaces() == sorted(SHIPPED)
    for name in SHIPPED:
        space = load_space(name)
        assert space.name == name and space.source == str(shipped_dir() / f"{name}.yaml")


def test_a_users_yaml_loads_by_path_from_any_working_directory(tmp_path, monkeypatch, small_space):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "elsewhere").mkdir()
    path = tmp_path / "spaces" / "my-space.yaml"
    path.write_text(yaml.safe_dump(small_space))
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_space(path).stages == parse_space(small_space).stages
    assert load_space(str(path)).source == str(path)
    assert load_space("../spaces/my-space.yaml").stages == parse_space(small_space).stages
    with pytest.raises(SpaceError, match="my-space: no search space of that name"):
        load_space("my-space")  # a bare name is not looked up beside some earlier file


def test_mbv2_cifar_structure():
    space = load_space("mbv2-cifar")
    assert [st.stride for st in space.stages] == [1, 1, 2, 2, 1, 2, 1]
    assert [st.max_depth for st in space.stages] == [1, 2, 3, 4, 3, 3, 1]
    assert [max(st.widths) for st in space.stages] == [16, 24, 32, 64, 96, 160, 320]
    assert all(w % 8 == 0 for st in space.stages for w in st.widths)
    assert space.stages[0].op_names == ("k3_e1", "k5_e1", "k7_e1")
    assert (space.activation, space.expand_at_e1, space.classes, space.head.widths) == ("relu6", False, 10, (640, 1280))


def test_fbnet_cifar_matches_hw_nas_bench_macro_network():
    space = load_space("fbnet-cifar")
    fbnet_ops = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
    assert space.stem.widths == (16,) and space.stem.stride == 1
    assert [st.depths for st in space.stages] == [(1,), (4,), (4,), (4,), (4,), (4,), (1,)]
    assert [st.widths for st in space.stages] == [(16,), (24,), (32,), (64,), (112,), (184,), (352,)]
    assert [st.stride for st in space.stages] == [1, 1, 2, 2, 1, 2, 1]
    assert all(st.op_names == fbnet_ops and st.per_block for st in space.stages)
    assert sum(st.max_depth for st in space.stages) == 22
    assert (space.activation, space.expand_at_e1, space.classes, space.head.widths) == ("relu", True, 100, (1504,))


def test_local_folder_comes_before_the_shipped_spaces(tmp_path, monkeypatch, small_space):
    (tmp_path / "search_spaces").mkdir()
    small_space["name"] = "mbv2-cifar"
    (tmp_path / "search_spaces" / "mbv2-cifar.yaml").write_text(yaml.safe_dump(small_space))
    (tmp_path / "search_spaces" / "mine.yaml").write_text(yaml.safe_dump(small_space))
    monkeypatch.chdir(tmp_path)
    assert load_space("mbv2-cifar").stages == load_space("mine").stages
    assert len(load_space("mbv2-cifar").stages) == 3
    assert load_space("fbnet-cifar").name == "fbnet-cifar"  # falls through to the shipped one
    assert {"mine", "mbv2-cifar", "fbnet-cifar"} <= set(available_spaces())


def test_unknown_name_lists_available_spaces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpaceError, match=r"nope: no search space .*'fbnet-cifar', 'mbv2-cifar'"):
        load_space("nope")


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(SpaceError, match=f"{path}: search-space file not found"):
        load_space(path)
    with pytest.raises(SpaceError, match="not found"):
        load_space(str(path))


def test_to_dict_round_trip():
    for name in SHIPPED:
        space = load_space(name)
        assert parse_space(space.to_dict()) == space


def test_fingerprint_stable_across_loads():
    for name in SHIPPED:
        assert load_space(name).fingerprint() == load_space(name).fingerprint()
    assert load_space("mbv2-cifar").fingerprint() != load_space("fbnet-cifar").fingerprint()


def test_fingerprint_changes_with_any_choice(small_space):
    base = parse_space(small_space).fingerprint()
    small_space["stages"][1]["width"] = [16, 32]
    assert parse_space(small_space).fingerprint() != base
    small_space["stages"][1]["width"] = [24, 16]  # order is part of the Optuna space
    assert parse_space(small_space).fingerprint() != base
    small_space["stages"][1]["width"] = [16, 24]
    small_space["compression"]["weight_bits"] = [8]
    assert parse_space(small_space).fingerprint() != base


def test_fingerprint_ignores_name_and_form(small_space):
    base = parse_space(small_space).fingerprint()
    small_space["name"] = "renamed"
    stage = small_space["stages"][1]
    del stage["kernel"], stage["expansion"]
    stage["blocks"] = ["k3_e3", "k3_e6", "k5_e3", "k5_e6"]
    assert parse_space(small_space).fingerprint() == base
