"""`autoc export --format executorch`: a .pte program (XNNPACK) that ExecuTorch alone runs, int8
exactly on the policy's int8 layers, checked in its runtime against what the search scored."""
import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from autoc.arch.builder import build_model
from autoc.candidate import Candidate
from autoc.cli import main
from autoc.compress.quant import apply_quantization
from autoc.export import executorch as et
from autoc.latency.executorch import int8_weight_layers
from autoc.onnx.export import policy_int8_layers
from helpers import tiny_candidate
from test_export_command import mixed_trial, trial_model

SCRIPT = Path(__file__).with_name("executorch_standalone_check.py")
needs_executorch = pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                                      reason="executorch is in the dev extra: pip install -e '.[dev]'")


def run_without_autoc(program, images, tmp_path) -> torch.Tensor:
    """The program's logits for ``images``, computed by executorch.runtime in a process without autoc."""
    torch.save(images, tmp_path / "images.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-I", SCRIPT, program, tmp_path / "images.pt", tmp_path / "logits.pt"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return torch.load(tmp_path / "logits.pt")


@needs_executorch
def test_pte_runs_without_autoc_and_scores_the_trial_within_the_gate(tiny_run, tiny_val_images, tmp_path, capsys):
    number, record = mixed_trial(tiny_run)  # pruned, some layers int8 (4-bit weights among them)
    out = tmp_path / "m.pte"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["export", str(tiny_run), "--trial", str(number), "--format", "executorch", "-o", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err  # the accuracy gate (1 point on the validation split) holds
    assert "accuracy, validation split" in printed.out and "latency, ms (median, 1 thread)" in printed.out
    assert "ONNX Runtime profile" in printed.out and "deprecat" not in printed.err.lower()
    notices = [str(w.message) for w in caught if "deprecat" in str(w.message).lower()]
    assert not notices, notices

    _, model = trial_model(record)
    images = tiny_val_images[:48]
    logits = run_without_autoc(out, images, tmp_path)
    with torch.no_grad():
        expected = model(images)
    # int8 XNNPACK vs the fake-quant model: the same function up to quantisation noise.
    assert torch.linalg.norm(logits - expected) / torch.linalg.norm(expected) < 0.1
    assert (logits.argmax(1) == expected.argmax(1)).float().mean() >= 0.9


@needs_executorch
def test_only_the_policys_int8_layers_are_quantised(tiny_run, tiny_val_images):
    number, record = mixed_trial(tiny_run)
    candidate, model = trial_model(record)
    graph = et.quantize_for_xnnpack(model, candidate, calibration=tiny_val_images[:16].numpy())
    wanted = policy_int8_layers(candidate.netspec(), candidate.policy)
    assert int8_weight_layers(graph) == wanted
    assert 0 < len(wanted) < len(candidate.netspec().layer_names())  # a global quantisation would fail


@needs_executorch
def test_fp32_policy_program_matches_eager_pytorch(tmp_path):
    candidate = tiny_candidate(keep=0.5, precision="fp32")
    model = apply_quantization(build_model(candidate.netspec(), seed=0), candidate.policy).eval()
    program = tmp_path / "fp32.pte"
    program.write_bytes(et.executorch_program(model, candidate, calibration=None))
    images = torch.randn(4, candidate.arch.in_channels, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(run_without_autoc(program, images, tmp_path), model(images), rtol=1e-4, atol=1e-4)


def test_missing_executorch_is_one_line_naming_the_install_and_writes_nothing(tiny_run, tmp_path, capsys, monkeypatch):
    def no_executorch(name, *args, **kwargs):
        if name.startswith("executorch"):
            raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")
        return __import__("importlib").import_module(name, *args, **kwargs)

    monkeypatch.setattr(et, "import_module", no_executorch)
    before = sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*"))
    out = tmp_path / "m.pte"
    code = main(["export", str(tiny_run), "--format", "executorch", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "pip install executorch==1.5.1" in err and "No module named 'executorch'" in err
    assert not out.exists() and sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*")) == before


@needs_executorch
def test_int8_layers_the_quantizer_cannot_express_are_named_and_exit_2(tiny_run, tmp_path, capsys, monkeypatch):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer

    # A quantizer without conv patterns: every int8 layer of the policy is beyond it.
    patterns = [p for p in XNNPACKQuantizer.SUPPORTED_PATTERNS if not p.name.startswith("conv")]
    monkeypatch.setattr(XNNPACKQuantizer, "SUPPORTED_PATTERNS", patterns)
    number, record = mixed_trial(tiny_run)
    candidate = Candidate.from_dict(record.candidate)
    out = tmp_path / "m.pte"
    code = main(["export", str(tiny_run), "--trial", str(number), "--format", "executorch", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    layers = sorted(policy_int8_layers(candidate.netspec(), candidate.policy))
    assert f"left int8 layers {layers} in fp32" in err and not out.exists()
