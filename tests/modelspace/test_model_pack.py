"""A user's model compressed for another device: its calibration pack, measured by the pack's own
runner (this host standing in for the device), imported, then used by `autoc compress --device`."""
import json
import subprocess
import sys

import optuna
import pytest
import torch

from autoc.cli import main
from autoc.errors import DeviceError
from autoc.latency.pack import MANIFEST, RUNNER, import_results
from autoc.modelspace import load_model
from autoc.modelspace.groups import analyse
from autoc.modelspace.compress import ModelPolicy
from autoc.modelspace.latency import (FIT_VARIANTS, HELD_OUT_VARIANTS, INT8_LAYER, Layer, model_layers, policy_layers,
                                      random_policies)
from autoc.modelspace.pack import DeviceTable, import_model_results, structure_digest

MODEL, SIZE, KEEP = "torchvision:resnet18", 32, ("0.5", "1")
COMPRESS = ["--dataset", "digits", "--input-size", str(SIZE), "--max-train", "200", "--max-val", "100",
            "--pretrain-steps", "3", "--finetune-steps", "1", "--keep-choices", *KEEP]


def _cli(capsys, *argv):
    """(exit code, stdout, stderr) of one autoc command run in this process."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """resnet18's pack for device 'board', run by its run_pack.py, imported: (runs dir, pack dir, table file)."""
    root = tmp_path_factory.mktemp("board")
    runs, pack = root / "runs", root / "pack"
    assert main(["calibrate", "--device", "board", "--model", MODEL, "--input-size", str(SIZE), "--keep-choices",
                 *KEEP, "--export-pack", str(pack), "--runs-dir", str(runs)]) == 0
    done = subprocess.run([sys.executable, str(pack / RUNNER), "--repeats", "8", "--warmup", "2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert main(["calibrate", "--device", "board", "--import", str(pack / "RESULTS.csv"), "--runs-dir", str(runs)]) == 0
    [table] = (runs / "devices" / "models" / "board").glob("*.json")
    return runs, pack, table


def _resnet18():
    model = load_model(MODEL, num_classes=10)
    example = torch.zeros(1, 3, SIZE, SIZE)
    return model, analyse(model, example), model_layers(model, example)


def test_a_model_pack_holds_every_unit_a_compress_search_can_pick_once_and_names_the_model(board):
    _, pack, _ = board
    manifest = json.loads((pack / MANIFEST).read_text())
    model, structure, layers = _resnet18()
    assert manifest["model"] == {"model": MODEL, "structure": structure_digest(layers, structure), "input_size": SIZE,
                                 "num_classes": 10, "keep_choices": [0.5, 1.0], "seed": 0}
    units = [m["name"] for m in manifest["models"] if m["kind"] == "unit"]
    assert len(units) == len(set(units))
    for policy in random_policies(structure, 30, seed=7, keep_choices=(0.5, 1.0)):
        assert {layer.key for layer in policy_layers(layers, structure, policy)} <= set(units)
    roles = [n["role"] for n in manifest["networks"]]
    # as autoc compress calibrates the host
    assert roles.count("fit") == FIT_VARIANTS and roles.count("held_out") == HELD_OUT_VARIANTS
    assert manifest["networks"][0]["units"] == [layer.key for layer in layers]  # the original model is fitted on


def test_the_import_records_the_device_table_with_its_source_and_held_out_figures(board):
    _, pack, path = board
    stored = json.loads(path.read_text())
    assert stored["device"] == "board" and stored["model"] == MODEL and stored["source"] == str(pack / "RESULTS.csv")
    assert len(stored["held_out_errors"]) == HELD_OUT_VARIANTS == stored["validation"]["n"] and stored["created"]
    assert stored["identity"]["runtime"] == "onnxruntime"
    table = DeviceTable.from_dict(stored).table
    with pytest.raises(DeviceError, match="cannot be measured on this host"):  # an imported table never measures
        table.measure([Layer(name="x", kind="linear", cin=3, cout=5)])


def test_compress_for_the_device_predicts_with_its_imported_table_and_measures_nothing_here(board, monkeypatch,
                                                                                           capsys):
    runs, _, path = board
    table = DeviceTable.from_dict(json.loads(path.read_text())).table
    _, structure, layers = _resnet18()
    original_ms = table.predict_ms(layers)

    def no_host_timing(*args, **kwargs):
        raise AssertionError("timed on this host")

    for target in ("autoc.modelspace.latency.measure_interleaved", "autoc.modelspace.driver.measure_networks",
                   "autoc.modelspace.driver.measure_exported"):
        monkeypatch.setattr(target, no_host_timing)
    code, out, err = _cli(capsys, "compress", MODEL, "--device", "board", "--budget-ms", f"{0.9 * original_ms:.4f}",
                          "--trials", "3", "--runs-dir", str(runs), "--study", "s", "--allow-drift", *COMPRESS)
    assert code == 0, err
    assert f"{original_ms:.3f} ms predicted for board (not measured here)" in out
    assert f"{HELD_OUT_VARIANTS} held-out variants predicted within" in out and "on board (its imported table)" in out
    assert "from the predicted" not in out + err  # no latency gate against this host's timing
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{runs / 's' / 'study.db'}")
    for trial in study.trials:  # the study's parameters: keep:GROUP ratios and int8:LAYER flags
        policy = ModelPolicy.of(
            keep={k[5:]: v for k, v in trial.params.items() if k.startswith("keep:") and v < 1.0},
            layers={k[5:]: INT8_LAYER for k, v in trial.params.items() if k.startswith("int8:") and v})
        predicted = table.predict_ms(policy_layers(layers, structure, policy))
        assert trial.user_attrs["latency_ms"] == pytest.approx(predicted, rel=1e-9)
    chosen = [line for line in out.splitlines() if line.startswith("budget ")]
    assert len(chosen) == 1 and ("predicted for board, not measured here" in chosen[0] or "no trial fits" in chosen[0])


def test_compress_for_a_device_without_this_models_table_names_the_calibrate_command_and_stores_nothing(board,
                                                                                                        capsys):
    runs, _, path = board
    code, _, err = _cli(capsys, "compress", "usernets:small_resnet", "--device", "board", "--budget-ms", "1",
                        "--runs-dir", str(runs), "--study", "other", *COMPRESS[:-3])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "device 'board' has no latency table for usernets:small_resnet at 32 px with 10 classes" in lines[0]
    assert f"(it has tables for: {path.name})" in lines[0]
    assert ("autoc calibrate --device board --model usernets:small_resnet --input-size 32 --num-classes 10 "
            "--keep-choices 0.25 0.5 0.75 1 --export-pack PACK_DIR") in lines[0]
    assert not (runs / "other").exists()


@pytest.mark.parametrize("extra, message", [
    (["--keep-choices", "0.25", "1"], "unit(s) that keep choices 0.25 1 reach"),  # units the pack did not measure
    (["--keep-choices", *KEEP, "--input-size", "16"], "has no latency table for torchvision:resnet18 at 16 px"),
])
def test_compress_with_other_keep_choices_or_size_than_the_pack_names_what_is_missing(board, capsys, extra, message):
    runs, _, _ = board
    code, _, err = _cli(capsys, "compress", MODEL, "--device", "board", "--budget-ms", "1", "--runs-dir", str(runs),
                        "--study", "mismatch", *COMPRESS, *extra)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0] and "autoc calibrate --device board" in lines[0], err
    assert not (runs / "mismatch").exists()


def test_a_corrupt_results_row_is_one_line_naming_the_file_and_the_table_is_untouched(board, tmp_path, capsys):
    runs, pack, path = board
    before = path.read_text()
    lines = (pack / "RESULTS.csv").read_text().splitlines(keepends=True)
    name, kind, *_ = lines[-1].split(",")
    bad = tmp_path / "RESULTS.csv"
    bad.write_text("".join(lines[:-1]) + f"{name},{kind},slow,1,1,1,8\n")
    code, _, err = _cli(capsys, "calibrate", "--device", "board", "--import", str(bad), "--pack", str(pack),
                        "--runs-dir", str(runs))
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(bad) in err and "ms = 'slow' is not a number" in err
    assert path.read_text() == before


def test_each_pack_kind_refuses_the_others_importer(board, tiny_pack_manifest):
    _, pack, _ = board
    with pytest.raises(DeviceError, match="a pack of the model torchvision:resnet18, not of a search space"):
        import_results(pack / "RESULTS.csv", device="board")
    with pytest.raises(DeviceError, match="a pack of search space 'tiny', not of a model"):
        import_model_results(tiny_pack_manifest / "RESULTS.csv", device="board")


@pytest.fixture
def tiny_pack_manifest(tmp_path):
    """A search-space pack's manifest and a results file naming its models (no measuring needed)."""
    manifest = {"schema": "autoc.pack/1", "pack_id": "p1", "device": "board", "space": {"name": "tiny"},
                "models": [{"file": "models/u0.onnx", "name": "u", "kind": "unit", "input_shape": [1]}],
                "networks": []}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    (tmp_path / "RESULTS.csv").write_text("name,kind,ms\nu,unit,0.5\n")
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["--device", "board", "--import", "x.csv", "--model", MODEL], "--model acts only with --export-pack"),
    (["--device", "host", "--model", MODEL, "--export-pack", "p"], "--model --export-pack is for another device"),
    (["--device", "board", "--model", MODEL, "--networks", "6", "--export-pack", "p"],
     "--networks and --held-out act on a search space's pack"),
    (["--device", "board", "--keep-choices", "0.5", "1", "--export-pack", "p"],
     "--keep-choices acts only on a model's pack"),
])
def test_model_pack_options_out_of_place_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, "calibrate", *argv, "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "p").exists()


def test_autoc_devices_lists_the_model_table_with_its_held_out_figures(board, capsys):
    runs, _, _ = board
    code, out, _ = _cli(capsys, "devices", "--runs-dir", str(runs))
    [row] = [line for line in out.splitlines() if line.startswith("board ")]
    assert code == 0 and "model table" in row and f"{MODEL} at {SIZE} px" in row and "keep choices 0.5 1" in row
