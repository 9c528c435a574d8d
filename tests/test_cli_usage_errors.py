"""A usage error (an invalid or missing argument) is one line naming the command and its --help,
with exit code 2, for the top-level parser and every subcommand's."""
import subprocess
import sys

import pytest

from autoc.cli import main


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["search", "--budget-ms", "abc"], "autoc search: error: argument --budget-ms: takes a finite number > 0, e.g. 20; not 'abc' "
                                           "(see autoc search --help)"),
        (["search", "--finalists", "many"], "autoc search: error: argument --finalists: takes a count >= 0 (e.g. 3) "
                                            "or auto, not 'many' (see autoc search --help)"),
        (["show"], "autoc show: error: the following arguments are required: target (see autoc show --help)"),
        (["export", "runs/x", "--format", "zip"], "autoc export: error: argument --format: invalid choice: 'zip'"),
        (["supernet", "train", "--steps", "many"], "autoc supernet train: error: argument --steps: invalid int "
                                                   "value: 'many' (see autoc supernet train --help)"),
        (["nosuch"], "autoc: error: argument command: invalid choice: 'nosuch'"),
        ([], "autoc: error: the following arguments are required: command (see autoc --help)"),
    ],
    ids=["search-bad-float", "search-bad-finalists", "show-missing-target", "export-bad-choice", "nested-subcommand", "unknown-command",
         "no-command"],
)
def test_a_usage_error_is_one_line_and_exit_2(capsys, argv, expected):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert expected in err and len(err.strip().splitlines()) == 1
    assert "usage:" not in err


def test_the_installed_command_prints_one_line_too():
    done = subprocess.run([sys.executable, "-m", "autoc.cli", "search", "--trials", "x"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "autoc search: error: argument --trials: takes a whole number >= 1, e.g. 30; not 'x' (see autoc search --help)\n"


@pytest.mark.parametrize(
    "argv, flag, example",
    [
        (["search", "--budget-ms", "inf"], "--budget-ms", "e.g. 20"),
        (["search", "--budget-ms", "nan"], "--budget-ms", "e.g. 20"),
        (["search", "--budget-ms", "-3"], "--budget-ms", "e.g. 20"),
        (["search", "--budget-ms", "20", "--budget-mj", "inf"], "--budget-mj", "e.g. 0.5"),
        (["search", "--budget-ms", "20", "--budget-mj", "0"], "--budget-mj", "e.g. 0.5"),
        (["search", "--budget-ms", "20", "--finetune-steps", "-5"], "--finetune-steps", "e.g. 20"),
        (["search", "--budget-ms", "20", "--teacher-steps", "-1"], "--teacher-steps", "e.g. 120"),
        (["search", "--budget-ms", "20", "--teacher-steps", "0"], "--teacher-steps", "e.g. 120"),
        (["search", "--budget-ms", "20", "--timeout", "-1"], "--timeout", "e.g. 3600"),
        (["search", "--budget-ms", "20", "--timeout", "0"], "--timeout", "e.g. 3600"),
        (["search", "--budget-ms", "20", "--trials", "0"], "--trials", "e.g. 30"),
        (["search", "--budget-ms", "20", "--max-train", "0"], "--max-train", "e.g. 2000"),
        (["search", "--budget-ms", "20", "--finalists", "-2"], "--finalists", "e.g. 3"),
        (["search", "--budget-ms", "20", "--supernet-lr", "nan"], "--supernet-lr", "e.g. 0.05"),
        (["search", "--budget-ms", "20", "--grace-period", "-60"], "--grace-period", "e.g. 60"),
        (["search", "--budget-ms", "20", "--seed", "-1"], "--seed", "e.g. 0"),
        (["export", "runs/x", "--trial", "-1"], "--trial", "e.g. 3"),
        (["supernet", "train", "--lr", "inf"], "--lr", "e.g. 0.05"),
        (["supernet", "train", "--threads", "0"], "--threads", "e.g. 2"),
        (["search", "--budget-ms", "20", "--noise-trials", "-1"], "--noise-trials", "e.g. 4"),
    ],
)
def test_a_count_or_duration_out_of_range_is_refused_while_parsing(capsys, tmp_path, monkeypatch, argv, flag, example):
    monkeypatch.chdir(tmp_path)  # whatever happened, it would happen here: nothing may
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"argument {flag}: " in err and example in err
    assert list(tmp_path.iterdir()) == []


def test_library_errors_name_the_flags_the_user_typed(tmp_path, capsys):
    (tmp_path / "pack").mkdir()
    assert main(["calibrate", "--device", "raspi4", "--export-pack", str(tmp_path / "pack"), "--space", "fbnet-cifar",
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "already exists; give --export-pack a new directory (nothing is overwritten)" in capsys.readouterr().err
    networks = tmp_path / "nets.csv"
    networks.write_text("a,b\n1,2\n")
    assert main(["calibrate", "--device", "pixel3", "--from-networks", str(networks), "--space", "fbnet-cifar",
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip().endswith("missing columns ['pixel3_ms'] (has ['a', 'b']); choose --column from: a, b")
