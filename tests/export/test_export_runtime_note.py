"""A study's latency profile records its runtime; exporting to another runtime says so in one line
(allowed), and the ExecuTorch latency is checked (±10%) only against this host's ExecuTorch profile."""
import importlib.util

import pytest

from autoc.cli import main
from autoc.export import exporter
from autoc.export.executorch import ExecutorchCheck, ExecutorchLatency
from autoc.export.stored_trial import open_trial
from autoc.search.stored import open_stored_run

needs_executorch = pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                                      reason="executorch is in the dev extra: pip install -e '.[dev]'")


def _notes(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("note: ")]


def test_the_study_profile_runtime_is_read_and_matching_runtimes_say_nothing(tiny_run):
    stored = open_trial(open_stored_run(tiny_run), trial=None)
    assert exporter.profile_runtime(stored) == "onnxruntime"
    assert exporter.runtime_note(stored, "onnx") is None and exporter.runtime_note(stored, "pt2") is None
    assert "runtimes differ" in exporter.runtime_note(stored, "executorch")


def test_onnx_export_of_an_executorch_profile_study_notes_the_runtime_in_one_line(tiny_run, tmp_path, capsys,
                                                                                  monkeypatch):
    monkeypatch.setattr(exporter, "profile_runtime", lambda stored: "executorch")
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_run), "--format", "onnx", "--no-check", "-o", str(out)]) == 0
    notes = _notes(capsys.readouterr().out)
    assert len(notes) == 1 and "measured in executorch" in notes[0] and "runs in onnxruntime" in notes[0], notes
    assert out.is_file()


@needs_executorch
def test_executorch_export_of_an_onnxruntime_profile_study_notes_the_runtime(tiny_run, tmp_path, capsys):
    out = tmp_path / "m.pte"
    assert main(["export", str(tiny_run), "--format", "executorch", "--no-check", "-o", str(out)]) == 0
    notes = _notes(capsys.readouterr().out)
    assert len(notes) == 1 and "measured in onnxruntime" in notes[0] and "runtimes differ (allowed)" in notes[0]
    assert out.is_file()


def _check(measured_ms: float, *, comparable: bool) -> ExecutorchCheck:
    latency = ExecutorchLatency(median_ms=measured_ms, p10_ms=measured_ms, p90_ms=measured_ms, repeats=10, threads=1,
                                figure_ms=measured_ms)
    return ExecutorchCheck(device="host-executorch" if comparable else "host", predicted_ms=1.0, measured=latency,
                           estimate_accuracy=0.5, fake_quant_accuracy=None, executorch_accuracy=None, val_samples=0,
                           int8_layers=(), profile_runtime="executorch" if comparable else "onnxruntime",
                           latency_comparable=comparable)


def test_executorch_latency_is_gated_only_against_a_matching_runtime_profile():
    assert _check(1.05, comparable=True).drift() == ()
    (line,) = _check(1.5, comparable=True).drift()
    assert "+50.0% from the predicted 1.000 ms" in line and "±10%" in line
    assert _check(1.5, comparable=False).drift() == () and _check(1.5, comparable=False).latency_error is None
