"""`autoc export` and `autoc report` on a finished `autoc compress` study (a tiny one on digits)."""
import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autoc.cli import main

# As tests/modelspace/test_driver.py runs it: a small user model on a slice of digits.
COMMON = ["--dataset", "digits", "--input-size", "16", "--max-train", "300", "--max-val", "100",
          "--pretrain-steps", "60", "--finetune-steps", "5", "--allow-drift"]

EXECUTORCH_SCRIPT = Path(__file__).parents[1] / "export" / "executorch_standalone_check.py"  # runs a .pte, no autoc
needs_executorch = pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                                      reason="executorch is in the dev extra: pip install -e '.[dev]'")

STANDALONE = """
import sys, numpy as np, onnxruntime as ort, torch
x = np.load(sys.argv[3])
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
with torch.no_grad():
    pt2_out = torch.export.load(sys.argv[2]).module()(torch.from_numpy(x)).numpy()
assert not any(name == "autoc" or name.startswith("autoc.") for name in sys.modules)
np.save(sys.argv[4], onnx_out)
np.save(sys.argv[5], pt2_out)
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished compress study with two budgets (0.6x and 0.9x the original's predicted latency)."""
    runs = tmp_path_factory.mktemp("runs")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # the original's predicted ms, as the refusal of a met budget says it
        assert main(["compress", "usernets:small_resnet", "--budget-ms", "1000", "--runs-dir", str(runs),
                     *COMMON, "--study", "probe"]) == 2
    ms = float(re.search(r"\(([\d.]+) ms predicted", err.getvalue()).group(1))
    budgets = [f"{0.6 * ms:.4f}", f"{0.9 * ms:.4f}"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["compress", "usernets:small_resnet", "--budget-ms", *budgets, "--trials", "4",
                     "--runs-dir", str(runs), *COMMON, "--study", "c"]) == 0
    from autoc.modelspace.stored import open_compress_study

    opened = open_compress_study(runs / "c")
    assert opened.exported, "no trial of four fits the larger budget"
    return opened


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autoc: error:"), captured.err
    return lines[0]


def test_onnx_and_pt2_exports_of_a_compress_study_load_without_autoc_and_match_the_compressed_model(
        study, tmp_path, capsys):
    chosen = max(study.exported, key=lambda c: c.budget_ms)  # the default: the largest budget's choice
    onnx_path, pt2_path = tmp_path / "m.onnx", tmp_path / "m.pt2"
    assert main(["export", str(study.run_dir), "--format", "onnx", "-o", str(onnx_path), "--allow-drift"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"trial {chosen.trial} -> {onnx_path}") and "accuracy, validation split" in out
    assert main(["export", str(study.run_dir), "--format", "pt2", "-o", str(pt2_path)]) == 0

    data = study.data()
    x = data.val_x[:32].numpy().astype(np.float32)  # a batch other than the export's example: dynamic
    np.save(tmp_path / "x.npy", x)
    subprocess.run([sys.executable, "-c", STANDALONE, str(onnx_path), str(pt2_path), str(tmp_path / "x.npy"),
                    str(tmp_path / "onnx.npy"), str(tmp_path / "pt2.npy")], check=True, capture_output=True)
    with torch.no_grad():
        expected = study.build_model(chosen)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "pt2.npy"), expected, rtol=1e-4, atol=1e-4)
    onnx_out = np.load(tmp_path / "onnx.npy")  # int8 QDQ in ONNX Runtime against the fake-quant model
    assert (onnx_out.argmax(1) == expected.argmax(1)).mean() >= 0.9
    stored = __import__("onnxruntime").InferenceSession(str(chosen.onnx_path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(onnx_out, stored.run(None, {"input": x})[0], rtol=1e-4, atol=1e-4)  # as compress wrote it


def test_a_compress_export_picks_the_budget_or_a_chosen_trial_and_refuses_others_in_one_line(study, tmp_path, capsys):
    smallest = min(study.exported, key=lambda c: c.budget_ms)
    policy = tmp_path / "p.policy.json"
    assert main(["export", str(study.run_dir), "--budget", f"{smallest.budget_ms:g}", "-o", str(policy)]) == 0
    assert capsys.readouterr().out.startswith(f"trial {smallest.trial} -> {policy}, {tmp_path / 'p.weights.pt'}")
    assert policy.read_bytes() == smallest.policy_path.read_bytes()
    assert main(["export", str(study.run_dir), "--trial", str(smallest.trial), "--format", "csv",
                 "-o", str(tmp_path / "l.csv")]) == 0
    assert (tmp_path / "l.csv").read_text().startswith("layer,type,in_channels,in_kept,out_channels,out_kept,")

    unchosen = next(t.number for t in study.trials if t.number not in {c.trial for c in study.exported})
    assert main(["export", str(study.run_dir), "--trial", str(unchosen)]) == 2
    assert "has no stored weights (only the trials chosen for a budget do)" in _one_error_line(capsys)
    assert main(["export", str(study.run_dir), "--budget", "12345"]) == 2
    assert "has no chosen policy for --budget 12345 ms" in _one_error_line(capsys)


def test_a_format_that_does_not_apply_to_a_compress_study_is_one_line_naming_those_that_do_and_exit_2(study, capsys):
    assert main(["export", str(study.run_dir), "--format", "nni"]) == 2
    line = _one_error_line(capsys)
    assert "--format 'nni' does not apply to an autoc compress study" in line
    assert "use one of policy, onnx, pt2, executorch, torchscript, state-dict, csv" in line


@needs_executorch
def test_executorch_export_of_a_compress_study_runs_without_autoc_scores_as_printed_int8_on_the_policys_layers(
        study, tmp_path, capsys):
    from autoc.export.compressed_executorch import quantize_compressed
    from autoc.latency.executorch import int8_weight_layers
    from autoc.modelspace.driver import CALIBRATION_IMAGES

    chosen = max(study.exported, key=lambda c: c.budget_ms)
    out = tmp_path / "m.pte"
    code = main(["export", str(study.run_dir), "--format", "executorch", "-o", str(out), "--allow-drift"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.out.startswith(f"trial {chosen.trial} -> {out}")
    assert "runs in executorch: the runtimes differ (allowed)" in printed.out  # the study's profile is ONNX Runtime's
    assert "latency, ms (median, 1 thread)" in printed.out and "an ONNX Runtime profile's" in printed.out
    assert "deprecat" not in printed.err.lower()
    fake_quant, printed_accuracy = map(float, re.search(r"accuracy, validation split\s+([\d.]+)\s+([\d.]+)",
                                                         printed.out).groups())

    data = study.data()
    torch.save(data.val_x, tmp_path / "images.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-I", EXECUTORCH_SCRIPT, out, tmp_path / "images.pt", tmp_path / "logits.pt"],
                   check=True, capture_output=True, env=env, timeout=120)
    logits = torch.load(tmp_path / "logits.pt")
    assert abs(float((logits.argmax(1) == data.val_y).float().mean()) - printed_accuracy) < 5e-5
    assert abs(printed_accuracy - fake_quant) <= 0.05  # int8 XNNPACK scores about what the fake-quant model does

    policy_int8 = {name for name, layer in study.policy_file(chosen).policy.layers.layers if layer.quantized}
    listed = re.search(r"int8 layers: (.*)\)", printed.out).group(1)
    assert listed == (", ".join(sorted(policy_int8)) if policy_int8 else "none (fp32 program)")
    graph = quantize_compressed(study.build_model(chosen), input_shape=study.input_shape(),
                                calibration=data.train_x[:CALIBRATION_IMAGES])
    assert int8_weight_layers(graph) == policy_int8


def test_report_on_a_compress_study_writes_an_html_page_with_its_budgets_and_trials(study, tmp_path, capsys):
    assert main(["report", str(study.run_dir), "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.startswith(f"report: {tmp_path / 'r' / 'report.html'} (1 plots: pareto.png)")
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"compress study {study.name}" in page and 'id="budgets"' in page and 'id="pareto"' in page
    for chosen in study.result.chosen:
        assert f"<td>{chosen.budget_ms:g}</td>" in page
    assert (tmp_path / "r" / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert main(["report", str(study.run_dir), "--out", str(tmp_path / "r")]) == 2  # an existing report needs --force
    assert "already exists" in _one_error_line(capsys)


@pytest.mark.parametrize("command", [["export", "--format", "onnx"], ["report"]])
def test_a_directory_that_holds_no_study_is_one_line_and_exit_2(tmp_path, command, capsys):
    assert main([command[0], str(tmp_path), *command[1:]]) == 2
    assert "holds no study.db" in _one_error_line(capsys)
