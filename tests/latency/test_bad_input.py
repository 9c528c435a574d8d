"""Bad input to `autoc latency`, `autoc calibrate` and the profile loader: one line naming the
file (and field) and the fix, exit code 2, and nothing under runs/ written or overwritten."""
import json
import logging
import re

import optuna
import pytest

from autoc.cli import main
from autoc.policy.file import PolicyFile, space_reference, write_policy
from autoc.latency.in_context import FEATURES
from autoc.latency.pack import MANIFEST, export_pack
from autoc.latency.profile import Correction, DeviceProfile, UnitPrior, data_identity, save_profile
from autoc.latency.validate import validation_figures
from autoc.space import load_space, sample_candidate


@pytest.fixture
def runs(tmp_path):
    """runs/ holding a valid pixel3 profile for fbnet-cifar (a fitted one's fields, none measured)."""
    runs = tmp_path / "runs"
    save_profile(valid_profile("pixel3"), runs / "devices" / "pixel3.json")
    return runs


def valid_profile(device: str) -> DeviceProfile:
    space = load_space("fbnet-cifar")
    return DeviceProfile(
        device=device,
        identity=data_identity("test data", created="t"),
        blocks={"ir-x": 0.5},
        correction=Correction(scale=1.0, intercept_ms=0.2),
        validation=validation_figures(measured=[1.0, 2.0], predicted=[1.1, 2.0]),
        source="networks",
        space={"name": space.name, "fingerprint": space.fingerprint()},
        prior=UnitPrior.uniform(ms_per_mmac=0.1, ms_per_melement=0.1, ms_per_unit=0.01),
    )


def snapshot(runs):
    """Every file under runs/ with its bytes and modification time."""
    return {p.relative_to(runs): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(runs.rglob("*")) if p.is_file()}


def refused(argv, runs, capsys) -> str:
    """Run ``argv`` on ``runs``; assert exit 2, a one-line message, and runs/ untouched; return the message."""
    before = snapshot(runs)
    assert main([*argv, "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # optuna may log a line before it
    assert err.startswith("autoc: error: "), err
    assert snapshot(runs) == before
    return err


@pytest.fixture
def policy(tmp_path):
    """A best_policy.json of an fbnet-cifar candidate."""
    space = load_space("fbnet-cifar")
    candidate = sample_candidate(space, optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask())
    metrics = {"accuracy": 0.5, "latency_ms": 1.0, "size_bytes": 1, "macs": 1, "params": 1}
    return write_policy(PolicyFile(candidate, space_reference(space), metrics, "pixel3", "s", 0), tmp_path / "p.json")


def test_the_valid_profile_and_policy_work(runs, policy, capsys):
    # the refusals below are the edits', not the fixtures'
    assert main(["latency", "validate", "--device", "pixel3", "--runs-dir", str(runs)]) == 0
    assert main(["latency", "predict", "--device", "pixel3", str(policy), "--runs-dir", str(runs)]) == 0
    assert "ms predicted on pixel3" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["latency", "validate", "--device", "junk"],
        ["latency", "predict", "--device", "junk", "POLICY"],
        ["calibrate", "--device", "junk", "--set-energy", "static_mw=1"],
        ["search", "--device", "junk", "--budget-ms", "20", "--trials", "1", "--no-progress"],
    ],
    ids=["validate", "predict", "set-energy", "search"],
)
def test_non_utf8_profile_is_named(runs, policy, capsys, argv):
    path = runs / "devices" / "junk.json"
    path.write_bytes(b"\xff\xfe\x00{\x9c not text")
    err = refused([str(policy) if a == "POLICY" else a for a in argv], runs, capsys)
    assert f"device profile {path} is not a valid profile JSON (not UTF-8 text)" in err


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d.update(blocks="x"), r"field blocks must be an object of block key -> milliseconds, got a string"),
        (lambda d: d["blocks"].update({"ir-x": "fast"}), r"field blocks\['ir-x'\] must be a time in milliseconds .*got a string"),
        (lambda d: d["blocks"].update({"ir-x": -1}), r"field blocks\['ir-x'\] = -1 is below the minimum 0"),
        (lambda d: d["blocks"].update({"ir-x": float("inf")}), r"field blocks\['ir-x'\] = inf is not a finite time >= 0 ms"),
        (lambda d: d["energy"].update(static_mw="x"), r"field energy.static_mw must be a number, got a string"),
        (lambda d: d["energy"].update(static_mw=float("nan")), r"energy coefficient static_mw = nan must be >= 0 and finite"),
        (lambda d: d["energy"].update(static_mw=-5), r"field energy.static_mw = -5 is below the minimum 0"),
        (lambda d: d["energy"].update(estimate="yes"), r"field energy.estimate must be true or false, got a string"),
        (lambda d: d["correction"].update(scale=True), r"field correction.scale must be a number, got true/false"),
        (lambda d: d.update(prior=[1, 2]), r"field prior must be an object of numbers or null, got an array"),
        (lambda d: d.update(prior={}), r"field prior is empty; give some of \['fp32_mmac'"),
        (lambda d: d.update(prior={"fp32_mmac": 1, "tpu_mmac": 2}), r"field prior has unknown field\(s\) \['tpu_mmac'\]"),
        (lambda d: d["identity"].update(threads="1"), r"field identity.threads must be a whole number, got a string"),
        (lambda d: d["identity"].update(precisions="fp32"), r"field identity.precisions must be an array of strings"),
        (lambda d: d["space"].update(name=3), r"field space.name must be a string, got a number"),
        (lambda d: d.update(device=None), r"field device must be a string \(the device name\), got null"),
        (lambda d: d["validation"].update(within_10pct="x"), r"field validation.within_10pct must be a number"),
        (lambda d: d.update(in_context={"features": list(FEATURES), "coefficients": ["a"]}),
         r"field in_context.coefficients\[0\] must be a number, got a string"),
        (lambda d: d.update(in_context={"features": "x", "coefficients": []}), r"field in_context.features must be"),
    ],
    ids=["blocks", "block-time", "block-negative", "block-infinite", "energy", "energy-nan", "energy-negative", "estimate", "correction", "prior",
         "prior-empty", "prior-unknown-feature",
         "threads", "precisions", "space", "device", "validation", "in-context", "in-context-features"],
)
def test_malformed_profile_fields_are_named(runs, capsys, edit, match):
    path = runs / "devices" / "pixel3.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    err = refused(["latency", "validate", "--device", "pixel3"], runs, capsys)
    assert f"device profile {path}: " in err and "correct the field in the file" in err
    assert re.search(match, err), err


def test_set_energy_does_not_rewrite_a_malformed_profile(runs, capsys):
    path = runs / "devices" / "pixel3.json"
    path.write_text(path.read_text().replace('"static_mw": 0.0', '"static_mw": "x"'))
    err = refused(["calibrate", "--device", "pixel3", "--set-energy", "static_mw=5"], runs, capsys)
    assert f"device profile {path}: field energy.static_mw must be a number" in err


@pytest.mark.parametrize(
    "item, match",
    [
        ("static_mw=-5", "--set-energy 'static_mw=-5': energy coefficient static_mw = -5.0 must be >= 0"),
        ("static_mw=inf", "--set-energy 'static_mw=inf': energy coefficient static_mw = inf must be >= 0 and finite"),
        ("static_mw=lots", "--set-energy 'static_mw=lots': 'lots' is not a number"),
        ("pj_per_flop=1", "--set-energy 'pj_per_flop=1': unknown coefficient 'pj_per_flop'; allowed: "),
        ("estimate=maybe", "--set-energy 'estimate=maybe': give estimate=true or estimate=false"),
    ],
    ids=["negative", "infinite", "not-a-number", "unknown", "estimate"],
)
def test_set_energy_errors_point_at_the_command_line(runs, capsys, item, match):
    err = refused(["calibrate", "--device", "pixel3", "--set-energy", item], runs, capsys)
    assert match in err and "device profile" not in err, err


@pytest.mark.parametrize("measure", ["-1", "0"])
def test_measure_must_be_positive(runs, capsys, measure):
    # refused before the host profile is looked up (there is none here) or anything measured
    err = refused(["latency", "validate", "--device", "host", "--measure", measure], runs, capsys)
    assert f"--measure {measure} must be >= 1" in err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["latency", "validate", "--device", "host", "--measure", "2", "--space", "nosuch"], "nosuch: no search space"),
        (["latency", "validate", "--device", "pixel3", "--space", "nosuch"], "--space chooses the fresh networks of --measure"),
        (["latency", "validate", "--device", "pixel3", "--measure", "2"], "'pixel3' is another device: drop --measure"),
        (["latency", "validate", "--device", "pixel3", "--threads", "0"], "--threads 0 must be >= 1"),
        (["latency", "predict", "--device", "host", "POLICY", "--threads", "0"], "--threads 0 must be >= 1"),
        (["latency", "predict", "--device", "pixel3", "POLICY", "--threads", "2"], "device 'pixel3' has a single profile"),
    ],
    ids=["unknown-space", "space-without-measure", "measure-other-device", "validate-threads", "predict-threads",
         "threads-other-device"],
)
def test_options_without_effect_or_out_of_range_are_refused(runs, policy, capsys, argv, match):
    err = refused([str(policy) if a == "POLICY" else a for a in argv], runs, capsys)
    assert match in err, err


def test_predict_refuses_a_policy_of_a_space_not_installed(runs, policy, capsys):
    data = json.loads(policy.read_text())
    data["space"] = {"name": "nosuch", "fingerprint": data["space"]["fingerprint"]}
    policy.write_text(json.dumps(data))
    err = refused(["latency", "predict", "--device", "pixel3", str(policy)], runs, capsys)
    assert f"{policy}: field space: search space 'nosuch' is not installed" in err


@pytest.mark.parametrize("command", [["latency", "validate"], ["calibrate", "--set-energy", "static_mw=1"]])
def test_profile_of_another_device_under_this_name_is_refused(runs, capsys, command):
    path = runs / "devices" / "pixel9.json"
    path.write_bytes((runs / "devices" / "pixel3.json").read_bytes())  # a copy, still saying pixel3
    err = refused([*command, "--device", "pixel9"], runs, capsys)
    assert f"device profile {path} is named for device 'pixel9' but its field device says 'pixel3'" in err


def fbnet_rows(fbnet_head, tmp_path, rows: int):
    """The header and the first ``rows`` networks of the FBNet latency CSV."""
    path = tmp_path / f"nets{rows}.csv"
    path.write_text("".join(fbnet_head.read_text().splitlines(keepends=True)[: rows + 1]))
    return path


def from_networks(csv, *more):
    return ["calibrate", "--device", "pixel3", "--from-networks", str(csv), "--space", "fbnet-cifar", *more]


def test_from_networks_with_too_few_networks(runs, fbnet_head, tmp_path, capsys):
    csv = fbnet_rows(fbnet_head, tmp_path, 3)
    err = refused(from_networks(csv), runs, capsys)
    assert f"{csv} has 3 network(s); fitting needs at least 4 plus 1 held out (5 rows): add measured networks" in err


def test_from_networks_needs_a_held_out_network(runs, fbnet_head, tmp_path, capsys):
    csv = fbnet_rows(fbnet_head, tmp_path, 8)
    err = refused(from_networks(csv, "--fit", "8"), runs, capsys)  # the existing pixel3.json is kept
    assert f"--fit 8 leaves none of the 8 networks in {csv} held out" in err and "at most 7" in err
    assert "--fit 3 is too few" in refused(from_networks(csv, "--fit", "3"), runs, capsys)


def test_network_csv_error_names_file_and_line_once(runs, fbnet_head, tmp_path, capsys):
    csv = fbnet_rows(fbnet_head, tmp_path, 5)
    lines = csv.read_text().splitlines(keepends=True)
    cells = lines[2].split(",")
    lines[2] = ",".join([cells[0], "k9_e9", *cells[2:]])  # layer0 of the second network: no such op
    csv.write_text("".join(lines))
    err = refused(from_networks(csv), runs, capsys)
    assert err.count(f"{csv} line 3:") == 1 and "outside space 'fbnet-cifar'" in err, err


@pytest.fixture
def pack(tmp_path, tiny_space):
    """A small exported pack (never run): RESULTS.csv is written by the tests."""
    return export_pack(tmp_path / "pack", device="raspi", space=tiny_space, networks=3, held_out=1, seed=1).directory


def write_results(pack, *, empty_ms: float, unit_ms) -> None:
    """RESULTS.csv with the empty model at ``empty_ms``, unit i at ``unit_ms(i)``, every network at 5 ms."""
    models = json.loads((pack / MANIFEST).read_text())["models"]
    units = iter(range(len(models)))
    times = {"empty": lambda: empty_ms, "network": lambda: 5.0, "unit": lambda: unit_ms(next(units))}
    rows = [f"{m['name']},{m['kind']},{times[m['kind']]()}" for m in models]
    (pack / "RESULTS.csv").write_text("name,kind,ms\n" + "\n".join(rows) + "\n")


def test_import_whose_empty_row_exceeds_every_unit_is_refused(runs, pack, capsys):
    write_results(pack, empty_ms=10.0, unit_ms=lambda i: 1.0)
    err = refused(["calibrate", "--device", "raspi", "--import", str(pack / "RESULTS.csv")], runs, capsys)
    assert f"{pack / 'RESULTS.csv'}: the 'empty' row (10.0 ms) is at least every unit's time" in err
    assert "predict 0 ms" in err and "measure again with run_pack.py" in err


def test_import_where_most_units_are_free_warns(runs, pack, caplog):
    write_results(pack, empty_ms=1.0, unit_ms=lambda i: 2.0 if i % 4 == 0 else 0.5)
    with caplog.at_level(logging.WARNING, logger="autoc.latency"):
        assert main(["calibrate", "--device", "raspi", "--import", str(pack / "RESULTS.csv"), "--runs-dir", str(runs)]) == 0
    assert "units are no slower than the 'empty' row" in caplog.text and "unreliable" in caplog.text


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--device", "host", "--networks", "3"], "--networks 3 must be >= 4"),
        (["--device", "host", "--held-out", "-1"], "--held-out -1 must be >= 0"),
        (["--device", "host", "--repeats", "2"], "--repeats 2 must be >= 5"),
        (["--device", "pi", "--export-pack", "PACK", "--networks", "0"], "--networks 0 must be >= 4"),
        (["--device", "pi", "--export-pack", "PACK", "--repeats", "20"], "--repeats acts only with --device host;"),
        (["--device", "pi", "--from-networks", "x.csv", "--networks", "10"],
         "--networks acts only with --device host or --export-pack"),
        (["--device", "host", "--fit", "10"], "--fit acts only with --from-networks"),
        (["--device", "host", "--column", "pixel3_ms"], "--column acts only with --from-networks"),
        (["--device", "pi", "--from-networks", "x.csv", "--pack", "somewhere"], "--pack acts only with --import"),
        (["--device", "pixel3", "--set-energy", "static_mw=1", "--held-out", "4"], "--held-out acts only with"),
    ],
    ids=["host-networks", "host-held-out", "host-repeats", "pack-networks", "pack-repeats", "networks-csv-networks",
         "host-fit", "host-column", "networks-csv-pack", "set-energy-held-out"],
)
def test_calibrate_options_out_of_range_or_without_effect_are_refused(runs, tmp_path, capsys, argv, match):
    # refused before anything is measured, read or written (x.csv does not even exist)
    argv = [str(tmp_path / "pack") if a == "PACK" else a for a in argv]
    err = refused(["calibrate", *argv], runs, capsys)
    assert match in err, err
    assert not (tmp_path / "pack").exists()


def test_a_pack_directory_without_manifest_is_named_as_the_pack_flag(tmp_path, capsys):
    runs, empty = tmp_path / "runs", tmp_path / "empty"
    runs.mkdir()
    empty.mkdir()
    err = refused(["calibrate", "--device", "raspi", "--import", str(tmp_path / "RESULTS.csv"), "--pack", str(empty)],
                  runs, capsys)
    assert f"no {MANIFEST} in {empty}; give --pack the directory 'autoc calibrate --export-pack' wrote" in err
