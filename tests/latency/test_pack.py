import json
import os
import stat
import subprocess
import sys

import pytest

from autoc.candidate import Candidate
from autoc.errors import DeviceError
from autoc.latency.model import LookupTableLatencyModel
from autoc.latency.pack import MANIFEST, RUNNER, export_pack, import_results


@pytest.fixture(scope="module")
def measured_pack(tmp_path_factory, tiny_space):
    """A small pack, measured by its own runner in a subprocess (this Python, onnxruntime only)."""
    directory = tmp_path_factory.mktemp("packs") / "raspi"
    summary = export_pack(directory, device="raspi", space=tiny_space, networks=4, held_out=3, seed=1)
    assert summary.networks == 4 and summary.held_out == 3 and summary.units > 5
    done = subprocess.run(
        [sys.executable, str(directory / RUNNER), "--repeats", "15", "--warmup", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return directory


def test_round_trip_export_run_import_predict(measured_pack):
    profile = import_results(measured_pack / "RESULTS.csv", device="raspi")
    manifest = json.loads((measured_pack / MANIFEST).read_text())
    units = {m["name"] for m in manifest["models"] if m["kind"] == "unit"}
    assert set(profile.blocks) == units and all(ms >= 0 for ms in profile.blocks.values())
    assert profile.source == "pack" and profile.identity.runtime == "onnxruntime" and profile.identity.threads == 1
    assert profile.validation["n"] == 3 and profile.validation["fit_networks"] == 4
    assert not profile.validation["in_sample"]
    model = LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)
    for entry in manifest["networks"]:
        candidate = Candidate.from_dict(entry["candidate"])
        assert model.predict(candidate.netspec(), candidate.policy) > 0
    # The held-out predictions are what the profile records.
    held = [e for e in manifest["networks"] if e["role"] == "held_out"]
    first = Candidate.from_dict(held[0]["candidate"])
    recorded = {row["name"]: row["predicted_ms"] for row in profile.validation["networks"]}
    assert model.predict(first.netspec(), first.policy) == pytest.approx(recorded[held[0]["name"]], abs=1e-3)


def test_runner_csv_format(measured_pack):
    lines = (measured_pack / "RESULTS.csv").read_text().splitlines()
    meta = [line for line in lines if line.startswith("#")]
    assert any(line.startswith("# pack: ") for line in meta) and any("runtime_version" in line for line in meta)
    assert lines[len(meta)] == "name,kind,ms,median_ms,p10_ms,p90_ms,repeats"
    kinds = {line.split(",")[1] for line in lines[len(meta) + 1 :]}
    assert kinds == {"unit", "network", "empty"}


def test_the_pack_and_its_results_get_the_modes_the_umask_gives(measured_pack):
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((measured_pack / "RESULTS.csv").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(measured_pack.stat().st_mode) == 0o777 & ~umask


def test_export_never_overwrites(measured_pack, tiny_space):
    before = (measured_pack / MANIFEST).read_text()
    with pytest.raises(DeviceError, match="already exists"):
        export_pack(measured_pack, device="raspi", space=tiny_space, networks=1, held_out=0)
    assert (measured_pack / MANIFEST).read_text() == before


def rewrite(measured_pack, tmp_path, edit):
    lines = (measured_pack / "RESULTS.csv").read_text().splitlines(keepends=True)
    path = tmp_path / "RESULTS.csv"
    path.write_text("".join(edit(lines)))
    return path


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda ls: [l if l.startswith("#") else ",".join(l.split(",")[:2]) + "\n" for l in ls],
         r"line 12: missing columns \['ms'\]"),
        (lambda ls: ls[:-1] + [",".join([ls[-1].split(",")[0], ls[-1].split(",")[1], "slow", "1", "1", "1", "5\n"])],
         r"line \d+: ms = 'slow' is not a number"),
        (lambda ls: ls[:-1] + [",".join([ls[-1].split(",")[0], ls[-1].split(",")[1], "-0.5", "1", "1", "1", "5\n"])],
         r"line \d+: ms = '-0.5' is not a positive time"),
        (lambda ls: ls + ["net999,network,1.0,1.0,1.0,1.0,5\n"], r"line \d+: model 'net999' is not in .*another pack"),
        (lambda ls: ls[:-1], r"lacks rows for 1 model"),
        (lambda ls: [l.replace("# pack: ", "# pack: other") for l in ls], r"measured from pack 'other"),
    ],
    ids=["missing-column", "non-numeric", "negative", "unknown-model", "missing-row", "other-pack"],
)
def test_bad_results_are_errors_naming_the_file(measured_pack, tmp_path, edit, match):
    path = rewrite(measured_pack, tmp_path, edit)
    with pytest.raises(DeviceError, match=match) as err:
        import_results(path, device="raspi", pack_dir=measured_pack)
    assert str(path) in str(err.value)


def test_import_without_manifest(tmp_path, measured_pack):
    path = rewrite(measured_pack, tmp_path, lambda ls: ls)
    with pytest.raises(DeviceError, match=f"no {MANIFEST} in {tmp_path}; give pack_dir the directory") as err:
        import_results(path, device="raspi")
    assert err.value.fields == ("pack_dir",)  # `autoc calibrate --import` shows it as --pack


def test_exporting_a_pack_shows_no_optuna_study_line(tmp_path, tiny_space):
    directory = tmp_path / "pack"
    done = subprocess.run(
        [sys.executable, "-m", "autoc.cli", "calibrate", "--device", "raspi", "--export-pack", str(directory),
         "--space", str(tiny_space.source), "--networks", "4", "--held-out", "0", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (directory / MANIFEST).is_file()
    assert "study created" not in done.stderr and "optuna" not in done.stderr.lower(), done.stderr
