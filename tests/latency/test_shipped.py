"""The device profiles shipped with autoc: usable by name with nothing calibrated, fitted from the
data they name, predicting that data's held-out networks as their validation records."""
import gzip
import json
import logging

import pytest

from autoc.errors import DeviceError
from autoc.latency import from_networks as fn
from autoc.latency.device import find_profile, known_devices, open_device_model
from autoc.latency.profile import load_profile, save_profile
from autoc.latency.shipped import SHIPPED, shipped_devices, shipped_path
from autoc.space import load_space
from latency_nets import SHARED_DATA

FBNET_CSV = SHARED_DATA / "fbnet_latency_pixel3_raspi4_pixel2.csv.gz"

DEVICES = ("pixel2", "pixel3", "raspi4")


def test_autoc_ships_pixel2_pixel3_and_raspi4_for_fbnet_cifar():
    assert set(DEVICES) <= set(shipped_devices()) == set(SHIPPED)
    for device in DEVICES:
        profile = load_profile(shipped_path(device))
        assert profile.device == device and profile.space["name"] == "fbnet-cifar"
        assert profile.space["fingerprint"] == load_space("fbnet-cifar").fingerprint()


@pytest.mark.parametrize("device", DEVICES)
def test_a_shipped_profile_names_its_source_fit_size_and_held_out_figures(device):
    profile = load_profile(shipped_path(device))
    figures = profile.validation
    recipe = SHIPPED[device]
    assert figures["source_file"] == FBNET_CSV.name == recipe.csv and recipe.column in profile.identity.cpu_model
    assert figures["fit_networks"] == recipe.fit and figures["seed"] == recipe.seed
    assert figures["in_sample"] is False and figures["n"] == 5000 - recipe.fit == len(figures["networks"])
    assert 0 < figures["within_10pct"] <= 1 and figures["kendall_tau"] > 0.5


@pytest.fixture
def fresh_log(monkeypatch):
    """Which profile a device resolves to is logged once a process: forget what was logged."""
    from autoc.latency import device

    monkeypatch.setattr(device, "_announced", set())


def test_a_shipped_device_opens_by_name_from_an_empty_runs_directory(tmp_path, caplog, fresh_log):
    with caplog.at_level(logging.INFO, logger="autoc.latency"):
        model = open_device_model("pixel3", runs_dir=tmp_path)
    assert model.profile.device == "pixel3" and "shipped with autoc" in caplog.text
    assert find_profile("pixel3", runs_dir=tmp_path)[1] == "shipped"
    assert {"host", *DEVICES} <= set(known_devices(tmp_path))
    assert not (tmp_path / "devices").exists()  # opening one writes nothing


def test_a_calibrated_profile_of_the_same_name_comes_before_the_shipped_one(tmp_path, caplog, fresh_log):
    from dataclasses import replace

    shipped = load_profile(shipped_path("pixel3"))
    mine = replace(shipped, validation={"note": "mine"})
    save_profile(mine, tmp_path / "devices" / "pixel3.json")
    with caplog.at_level(logging.INFO, logger="autoc.latency"):
        model = open_device_model("pixel3", runs_dir=tmp_path)
    assert model.profile.validation == {"note": "mine"} and "calibrated profile" in caplog.text
    assert find_profile("pixel3", runs_dir=tmp_path) == (tmp_path / "devices" / "pixel3.json", "calibrated")


def test_setting_a_shipped_profiles_energy_writes_the_users_copy_and_leaves_the_package_alone(tmp_path, capsys):
    from autoc.cli import main

    before = shipped_path("raspi4").read_bytes()
    runs = tmp_path / "runs"
    assert main(["calibrate", "--device", "raspi4", "--set-energy", "static_mw=900", "--runs-dir", str(runs)]) == 0
    assert shipped_path("raspi4").read_bytes() == before
    mine = load_profile(runs / "devices" / "raspi4.json")
    assert mine.energy.static_mw == 900 and mine.blocks == load_profile(shipped_path("raspi4")).blocks
    assert find_profile("raspi4", runs_dir=runs)[1] == "calibrated"  # the copy now comes first


def test_an_unknown_device_lists_the_shipped_ones_in_its_error(tmp_path):
    with pytest.raises(DeviceError, match=r"unknown device 'pixel9'.*none shipped.*pixel2.*pixel3.*raspi4"):
        open_device_model("pixel9", runs_dir=tmp_path)


def held_out_rows(names, tmp_path):
    """A CSV of the data's rows with these index values (reading all 5,000 takes ~30 s)."""
    wanted, lines = set(names), []
    with gzip.open(FBNET_CSV, "rt") as f:
        for line in f:
            if not lines or line.split(",", 1)[0] in wanted:
                lines.append(line)
    path = tmp_path / "held-out.csv"
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize("device", DEVICES)
def test_a_shipped_profile_predicts_held_out_networks_of_its_data_as_its_validation_says(device, tmp_path):
    if not FBNET_CSV.is_file():
        pytest.skip(f"shared data {FBNET_CSV} not present")
    profile = load_profile(shipped_path(device))
    recorded = {row["name"]: row for row in profile.validation["networks"][::500]}  # 8 of the 4,000
    networks = fn.read_networks(held_out_rows(recorded, tmp_path), space=load_space("fbnet-cifar"),
                                column=f"{device}_ms")
    assert sorted(n.name for n in networks) == sorted(recorded)
    model = open_device_model(device, runs_dir=tmp_path)
    for network in networks:
        row = recorded[network.name]
        assert network.latency_ms == pytest.approx(row["measured_ms"], abs=1e-3)
        predicted = model.predict(network.candidate.netspec(), network.candidate.policy)
        assert predicted == pytest.approx(row["predicted_ms"], abs=1e-3)


def test_the_shipped_profiles_are_package_data_in_the_wheel_listing():
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["autoc"]
    assert "**/*.json" in patterns or "latency/profiles/*.json" in patterns
    assert json.loads(shipped_path("pixel3").read_text())["schema"] == "autoc.device/2"
