"""`autoc show`, `autoc report` and `autoc export` only read a storage: a --storage that holds no
study storage is one line with exit 2, and no file is created or written."""
import os
import sqlite3

import pytest

from autoc.cli import main

READ_ONLY_COMMANDS = ("show", "report", "export")


def _other_programs_database(path):
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()


@pytest.mark.parametrize(
    "setup, message",
    [
        (None, "no study storage at {path}; run autoc search first or pass the right --storage"),
        (lambda path: path.write_bytes(b""), "no study storage at {path}; run autoc search first"),
        (lambda path: path.write_bytes(os.urandom(4096)), "{path} is not an SQLite database"),
        (_other_programs_database, "{path} is an SQLite database but not an Optuna study storage"),
    ],
    ids=["missing", "empty", "random-bytes", "another-programs-db"],
)
@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_a_storage_that_holds_no_study_is_refused_and_left_as_it_is(tmp_path, capsys, command, setup, message):
    path = tmp_path / "study.db"
    if setup is not None:
        setup(path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code = main([command, "s", "--storage", f"sqlite:///{path}"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert message.format(path=path) in captured.err and len(captured.err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing created or written


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_a_storage_in_a_missing_directory_creates_no_directory(tmp_path, capsys, command):
    path = tmp_path / "nowhere" / "study.db"
    code = main([command, "s", "--storage", f"sqlite:///{path}"])
    err = capsys.readouterr().err
    assert code == 2 and f"no study storage at {path}" in err
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_study_db_in_a_run_directory_is_named_with_the_fix(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    corrupt = os.urandom(8192)
    (run_dir / "study.db").write_bytes(corrupt)
    code = main(["show", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{run_dir / 'study.db'} is not an SQLite database" in err
    assert "restore it" in err and "--storage" in err and "--study" in err
    assert "server" not in err and "driver" not in err  # not a database server's problem
    assert (run_dir / "study.db").read_bytes() == corrupt and [p.name for p in run_dir.iterdir()] == ["study.db"]


@pytest.mark.parametrize("url", ["postgresql://u:s3cretPW@127.0.0.1:1/db", "postgresql+psycopg2://u:s3cretPW@127.0.0.1:1/db",
                                 "nonsense:u:s3cretPW@x"])
@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_a_storage_urls_password_is_never_echoed(tmp_path, capsys, command, url):
    code = main([command, "s", "--storage", url])
    captured = capsys.readouterr()
    assert code == 2 and len(captured.err.strip().splitlines()) == 1
    assert "s3cretPW" not in captured.err + captured.out
    assert "u:***@" in captured.err or "malformed" in captured.err


def test_called_from_python_the_storage_errors_name_the_option_fields(tmp_path):
    from autoc.errors import StorageError
    from autoc.search.stored import open_stored_run

    path = tmp_path / "study.db"
    with pytest.raises(StorageError) as raised:
        open_stored_run("s", storage=f"sqlite:///{path}")
    message = str(raised.value)
    assert "pass the right storage.url" in message and "--" not in message
    assert "storage.url" in raised.value.fields  # a command shows its flag for it (--storage)
