"""`autoc calibrate --device host --runtime executorch`: the host measured as .pte programs in
executorch.runtime (same protocol as ONNX Runtime), stored as device host-executorch."""
import importlib.util
import json

import pytest

from autoc.cli import main
from autoc.commands.calibrate import RUNTIMES as CLI_RUNTIMES
from autoc.latency import executorch as et
from autoc.latency.calibrate import calibrate_correction
from autoc.latency.device import known_devices, list_profiles, open_latency_model, profile_path
from autoc.latency.model import open_host_model
from autoc.latency.profile import host_device, host_runtime, load_profile
from autoc.latency.runtimes import RUNTIMES
from latency_nets import int8_policy, small_net

needs_executorch = pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                                      reason="executorch is in the dev extra: pip install -e '.[dev]'")


def test_runtime_names_and_host_devices():
    assert CLI_RUNTIMES == RUNTIMES == ("onnxruntime", "executorch")
    assert host_device("onnxruntime") == "host" and host_device("executorch") == "host-executorch"
    assert host_runtime("host-executorch") == "executorch" and host_runtime("host") == "onnxruntime"
    assert host_runtime("pixel3") is None
    # one file per runtime and thread count: the executorch profile never overwrites the ORT one
    assert profile_path("host-executorch", runs_dir=__import__("pathlib").Path("r"), threads=2).name == \
        "host-executorch-t2.json"


@needs_executorch
def test_executorch_calibration_writes_a_profile_that_predicts(tmp_path):
    net = small_net(ops=(__import__("autoc.arch.config", fromlist=["BlockOp"]).BlockOp(3, 3),))
    int8_block = int8_policy(net, blocks={net.blocks[0].name}, stem=False, head=False)
    fp32 = int8_policy(net, blocks=set(), stem=False, head=False)
    path = profile_path("host-executorch", runs_dir=tmp_path, threads=1)
    model = open_host_model(path, runtime="executorch")
    profile = calibrate_correction(model, [(net, fp32), (net, int8_block)], warmup=2, repeats=5, in_context=False)
    stored = load_profile(path)
    assert stored.device == "host-executorch"
    assert stored.identity.runtime == "executorch" and stored.identity.runtime_version == et.executorch_version()
    assert stored.validation["protocol"].startswith("executorch ")
    # one fp32 and one int8 key per unit kind that the int8 policy touches (the block)
    assert any(key.endswith("-int8") for key in stored.blocks) and len(stored.blocks) == 4
    assert all(ms > 0 for ms in stored.blocks.values()), stored.blocks
    assert profile.blocks == stored.blocks
    opened = open_latency_model("host-executorch", runs_dir=tmp_path, space=None, progress=False)
    assert opened.profile.identity.runtime == "executorch"
    assert opened.predict(net, int8_block) > 0 and opened.predict(net, fp32) > 0
    assert "host-executorch" in known_devices(tmp_path)
    assert [(e.name, e.threads) for e in list_profiles(tmp_path) if e.path == path] == [("host-executorch", 1)]


def test_unknown_runtime_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["calibrate", "--device", "host", "--runtime", "tflite", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and "tflite" in err, err
    assert not (tmp_path / "devices").exists()


def test_runtime_acts_only_on_the_host(tmp_path, capsys):
    code = main(["calibrate", "--device", "phone", "--export-pack", str(tmp_path / "p"), "--runtime", "executorch",
                 "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--runtime acts only with --device host" in err, err


def test_missing_executorch_is_one_line_exit_2_and_stores_nothing(tmp_path, capsys, monkeypatch):
    def no_executorch(name, *args, **kwargs):
        if name.startswith("executorch"):
            raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")
        return importlib.import_module(name, *args, **kwargs)

    monkeypatch.setattr(et, "import_module", no_executorch)
    code = main(["calibrate", "--device", "host", "--runtime", "executorch", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--runtime executorch needs ExecuTorch" in err and "pip install executorch==1.5.1" in err
    assert not (tmp_path / "devices").exists()


@pytest.mark.slow
@needs_executorch
def test_cli_calibrates_a_tiny_space_in_executorch(tmp_path, tiny_space, capsys, monkeypatch):
    """End to end through the CLI (minutes: every unit and network becomes a .pte program)."""
    monkeypatch.setattr("autoc.latency.calibrate.PREFIX_NETWORKS", 0)  # no prefixes: fewer programs to build
    space = tmp_path / "tiny.yaml"
    space.write_text(__import__("latency_nets").TINY_SPACE_YAML)
    argv = ["calibrate", "--device", "host", "--runtime", "executorch", "--space", str(space), "--networks", "4",
            "--held-out", "1", "--repeats", "5", "--runs-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "host-executorch-t1.json" in out and "--device host-executorch" in out
    data = json.loads((tmp_path / "devices" / "host-executorch-t1.json").read_text())
    assert data["identity"]["runtime"] == "executorch" and all(ms > 0 for ms in data["blocks"].values())
    assert not (tmp_path / "devices" / "host-t1.json").exists()

