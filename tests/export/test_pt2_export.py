"""`autoc export --format pt2`: a torch.export program of the trial that torch alone loads, at any
batch size; and no deprecation notice of torch's reaches the user from autoc's own export calls."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from autoc.cli import main
from autoc.commands.export import FORMAT_HELP
from test_export_command import mixed_trial, trial_model

SCRIPT = Path(__file__).with_name("pt2_standalone_check.py")


def test_pt2_program_loads_without_autoc_and_gives_the_trials_outputs_at_several_batch_sizes(
    tiny_run, tiny_val_images, tmp_path
):
    number, record = mixed_trial(tiny_run)  # pruned, with fake-quantised int8 layers
    out = tmp_path / "m.pt2"
    assert main(["export", str(tiny_run), "--trial", str(number), "--format", "pt2", "-o", str(out)]) == 0
    batches = [tiny_val_images[:8], tiny_val_images[8:11], tiny_val_images[11:12]]
    torch.save(batches, tmp_path / "inputs.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-I", SCRIPT, out, tmp_path / "inputs.pt", tmp_path / "outputs.pt"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    _, model = trial_model(record)
    with torch.no_grad():
        for got, x in zip(torch.load(tmp_path / "outputs.pt"), batches, strict=True):
            torch.testing.assert_close(got, model(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_plain_pytorch_exports_show_the_user_no_deprecation_notice(tiny_run, tmp_path, fmt):
    number, _ = mixed_trial(tiny_run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["export", str(tiny_run), "--trial", str(number), "--format", fmt, "-o", str(tmp_path / fmt)]) == 0
    notices = [str(w.message) for w in caught if "deprecat" in str(w.message).lower()]
    assert not notices, notices


def test_help_recommends_pt2_and_calls_torchscript_deprecated():
    assert FORMAT_HELP.index("pt2 (") < FORMAT_HELP.index("torchscript")
    assert "torchscript (deprecated by torch: prefer pt2)" in FORMAT_HELP
