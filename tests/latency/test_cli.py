import json
import re

import optuna
import pytest

from autoc.cli import main
from autoc.policy.file import PolicyFile, space_reference, write_policy
from autoc.space import load_space, sample_candidate


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fbnet_head):
    """runs/ with a pixel3 profile fitted by the CLI from the first 160 FBNet networks."""
    runs = tmp_path_factory.mktemp("runs")
    argv = ["calibrate", "--device", "pixel3", "--from-networks", str(fbnet_head), "--space", "fbnet-cifar",
            "--fit", "100", "--runs-dir", str(runs)]
    assert main(argv) == 0
    return runs


def test_from_networks_writes_a_profile_with_held_out_figures(runs, capsys):
    data = json.loads((runs / "devices" / "pixel3.json").read_text())
    assert data["schema"] == "autoc.device/2" and data["source"] == "networks"
    assert data["space"]["name"] == "fbnet-cifar" and data["validation"]["n"] == 60
    assert main(["latency", "validate", "--device", "pixel3", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "60 held-out networks" in out and "within +-10%" in out and "Kendall tau" in out and "worst:" in out


def test_predict_prints_latency_and_energy(runs, tmp_path, capsys):
    space = load_space("fbnet-cifar")
    candidate = sample_candidate(space, optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask())
    metrics = {"accuracy": 0.5, "latency_ms": 1.0, "size_bytes": 1, "macs": 1, "params": 1}
    path = write_policy(PolicyFile(candidate, space_reference(space), metrics, "pixel3", "s", 0), tmp_path / "p.json")
    assert main(["latency", "predict", "--device", "pixel3", str(path), "--breakdown", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "ms predicted on pixel3" in out and "mJ (estimate" in out and "stages.6.0" in out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["latency", "validate", "--device", "pixel9"], r"unknown device 'pixel9'.*known devices: host, note10, pixel2, pixel3, raspi4.*autoc calibrate"),
        (["calibrate", "--device", "host", "--import", "x.csv"], r"measured on this machine"),
        (["calibrate", "--device", "../etc", "--from-networks", "x.csv"], r"not usable as a profile name"),
        (["calibrate", "--device", "phone"], r"give --export-pack DIR"),
        (["calibrate", "--device", "pixel3", "--from-networks", "absent.csv", "--space", "fbnet-cifar"], r"no whole-network latency CSV at absent.csv"),
    ],
    ids=["unknown-device", "host-import", "bad-name", "no-mode", "missing-csv"],
)
def test_bad_input_exits_2_and_overwrites_nothing(runs, capsys, argv, match):
    before = (runs / "devices" / "pixel3.json").read_bytes()
    assert main([*argv, "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autoc: error: ") and len(err.strip().splitlines()) == 1
    assert re.search(match, err), err
    assert (runs / "devices" / "pixel3.json").read_bytes() == before


@pytest.mark.parametrize(
    "text, match",
    [("{oops", "is not valid JSON"), ('{"schema": "autoc.device/9"}', "has schema 'autoc.device/9'")],
    ids=["corrupt", "other-schema"],
)
def test_corrupt_or_foreign_schema_profiles_are_named(runs, capsys, text, match):
    path = runs / "devices" / "broken.json"
    path.write_text(text)
    try:
        assert main(["latency", "validate", "--device", "broken", "--runs-dir", str(runs)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and match in err, err
    finally:
        path.unlink()


def test_set_energy_updates_only_the_coefficients(runs, capsys):
    path = runs / "devices" / "pixel3.json"
    before = json.loads(path.read_text())
    argv = ["calibrate", "--device", "pixel3", "--set-energy", "int8_pj_per_mac=0.8", "static_mw=900",
            "--runs-dir", str(runs)]
    try:
        assert main(argv) == 0
        after = json.loads(path.read_text())
        assert after["energy"]["int8_pj_per_mac"] == 0.8 and after["energy"]["static_mw"] == 900
        assert after["energy"]["estimate"] is False and after["blocks"] == before["blocks"]
        assert main(["calibrate", "--device", "pixel3", "--set-energy", "static_mw=-1", "--runs-dir", str(runs)]) == 2
        assert "must be >= 0" in capsys.readouterr().err
        assert json.loads(path.read_text()) == after
    finally:
        path.write_text(json.dumps(before))
