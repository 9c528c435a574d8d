"""A usage error (an invalid or missing argument) is one line naming the command and its --help,
with exit code 2, for the top-level parser and every subcommand's."""
import subprocess
import sys

import pytest

from autoc.cli import main


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["search", "--budget-ms", "abc"], "autoc search: error: argument --budget-ms: invalid float value: 'abc' "
                                           "(see autoc search --help)"),
        (["search", "--finalists", "many"], "autoc search: error: argument --finalists: takes a count (e.g. 3) "
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
    assert done.stderr == "autoc search: error: argument --trials: invalid int value: 'x' (see autoc search --help)\n"
