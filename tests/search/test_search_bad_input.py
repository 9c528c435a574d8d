"""Bad storage URLs, read-only or half-written run directories, two searches on one study at once:
each a one-line error (exit 2) or safe behaviour, and nothing stored is lost."""
import os
import re
import shutil
import subprocess
import sys

import pytest
from optuna.trial import TrialState

from autoc.cli import main
from conftest import TINY_FLAGS, load
from autoc.search.storage import default_storage_url
from autoc.search.worker import SURPLUS_ATTR


def _search(tiny_space, runs_dir, *extra: str) -> list[str]:
    return [sys.executable, "-m", "autoc.cli", "search", *TINY_FLAGS, "--space", str(tiny_space),
            "--runs-dir", str(runs_dir), *extra]


def _without_write_override() -> list[str]:
    """Root writes through any permission bits: drop the capabilities that let it, so a
    read-only directory is read-only to the search as it is to a normal user."""
    if os.geteuid() != 0:
        return []
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    if shutil.which("setpriv") is None or subprocess.run([*drop, "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE (setpriv missing or not permitted here)")
    return drop


@pytest.mark.parametrize(
    "url, message",
    [
        ("notaurl", "storage URL 'notaurl' is malformed"),
        ("postgresql://nobody@127.0.0.1:1/none", "Connection refused"),
    ],
)
def test_a_bad_storage_url_is_one_line_and_exit_2(tiny_space, runs_dir, url, message, capsys):
    code = main(["search", *TINY_FLAGS, "--space", str(tiny_space), "--runs-dir", str(runs_dir), "--study", "u",
                 "--storage", url])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_a_bad_supernet_recipe_is_refused_before_any_study_exists(tiny_space, runs_dir, capsys):
    code = main(["search", *TINY_FLAGS, "--space", str(tiny_space), "--runs-dir", str(runs_dir), "--study", "r",
                 "--supernet-steps", "4", "--supernet-progressive", "--supernet-final-phase-share", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--supernet-final-phase-share (the final phase's share of the steps) must be in (0, 1], got 2.0" \
        in err and len(err.splitlines()) == 1
    assert not (runs_dir / "r").exists()


def test_a_read_only_run_directory_is_refused_before_any_trial(tiny_space, runs_dir):
    first = subprocess.run(_search(tiny_space, runs_dir, "--study", "ro", "--trials", "1"),
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = runs_dir / "ro"
    before = (run_dir / "study.db").read_bytes()
    for path in [run_dir, *run_dir.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        more = subprocess.run([*_without_write_override(), *_search(tiny_space, runs_dir, "--study", "ro", "--trials", "2")],
                              capture_output=True, text=True, timeout=300)
    finally:
        for path in [run_dir, *run_dir.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    assert more.returncode == 2, more.stderr[-2000:]
    assert f"run directory {run_dir} is not writable" in more.stderr and "chmod" in more.stderr
    assert "Traceback" not in more.stderr
    assert (run_dir / "study.db").read_bytes() == before  # nothing stored was touched


def test_a_truncated_teacher_cache_is_rebuilt_and_the_search_goes_on(tiny_space, runs_dir):
    [cache] = (runs_dir / "cache").glob("teacher-*.pt")
    cache.write_bytes(cache.read_bytes()[:100])  # a copy cut short, e.g. by a full disk
    done = subprocess.run(_search(tiny_space, runs_dir, "--study", "tc", "--trials", "1"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "is unreadable; retraining it" in done.stderr
    assert cache.stat().st_size > 1000  # rebuilt whole


def test_two_searches_started_on_one_study_at_once_share_it(tiny_space, runs_dir):
    command = _search(tiny_space, runs_dir, "--study", "both", "--trials", "4")
    searches = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [s.communicate(timeout=300) for s in searches]
    for search, (_, err) in zip(searches, results):
        assert search.returncode == 0, err[-2000:]
    trials = load(default_storage_url(runs_dir / "both"), "both").trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4  # the target counted across both
    assert all(t.state == TrialState.COMPLETE or t.user_attrs.get(SURPLUS_ATTR) for t in trials)
    # each reports the trials it ran, not the other's too (issue 29: both said "4 trials (4 this run)")
    ran = [int(re.search(r"4 trials \((\d+) this run\)", out).group(1)) for out, _ in results]
    assert sum(ran) == 4


def _refused(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


def _broken_profile(runs_dir) -> str:
    (runs_dir / "devices" / "broken.json").write_text("{not json")
    return "broken"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--budget-ms", "0.001"], "no candidate of space 'tiny' can meet 0.001 ms"),
        (["--device", "nosuch"], "unknown device 'nosuch'"),
        (["--device", _broken_profile], "broken.json is not valid JSON"),
    ],
    ids=["impossible-budget", "unknown-device", "corrupt-device-profile"],
)
def test_a_refused_search_leaves_no_run_directory_or_storage(tiny_space, runs_dir, capsys, extra, message):
    extra = [value(runs_dir) if callable(value) else value for value in extra]
    err = _refused(capsys, ["search", *TINY_FLAGS, "--space", str(tiny_space), "--runs-dir", str(runs_dir),
                            "--study", "f", *extra])
    assert message in err
    assert not (runs_dir / "f").exists()


@pytest.mark.parametrize("extra", [["--budget-ms", "0.001"], ["--device", "nosuch"]], ids=["budget", "device"])
def test_a_refused_search_on_an_existing_study_leaves_its_storage_as_it_was(tiny_space, runs_dir, capsys, extra):
    import optuna

    run_dir = runs_dir / "kept"
    run_dir.mkdir()
    optuna.create_study(study_name="kept", storage=default_storage_url(run_dir)).set_user_attr("note", "mine")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    _refused(capsys, ["search", *TINY_FLAGS, "--space", str(tiny_space), "--runs-dir", str(runs_dir),
                      "--study", "kept", *extra])
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_a_corrupt_study_db_is_named_and_never_overwritten(tiny_space, runs_dir, capsys):
    run_dir = runs_dir / "broken"
    run_dir.mkdir()
    corrupt = os.urandom(8192)
    (run_dir / "study.db").write_bytes(corrupt)
    err = _refused(capsys, ["search", *TINY_FLAGS, "--space", str(tiny_space), "--runs-dir", str(runs_dir),
                            "--study", "broken", "--trials", "1"])
    assert f"{run_dir / 'study.db'} is not an SQLite database" in err and "--storage or --study" in err
    assert "server" not in err
    assert (run_dir / "study.db").read_bytes() == corrupt and [p.name for p in run_dir.iterdir()] == ["study.db"]


def test_a_storage_in_a_missing_directory_leaves_no_run_directory(tiny_space, runs_dir, tmp_path, capsys):
    database = tmp_path / "nowhere" / "study.db"
    err = _refused(capsys, ["search", *TINY_FLAGS, "--space", str(tiny_space), "--runs-dir", str(runs_dir),
                            "--study", "m", "--storage", f"sqlite:///{database}"])
    assert f"directory {database.parent} does not exist" in err
    assert not (runs_dir / "m").exists() and not database.parent.exists()


@pytest.mark.parametrize("dataset", ["cifar10", "imagefolder"])
def test_a_dataset_without_data_dir_names_the_command_line_option(tiny_space, runs_dir, capsys, dataset):
    err = _refused(capsys, ["search", *TINY_FLAGS, "--space", str(tiny_space), "--runs-dir", str(runs_dir),
                            "--study", "d", "--dataset", dataset])
    assert f"{dataset} needs a data path (--data-dir)" in err
    assert "download" not in err  # `autoc search` has no such option
    assert not (runs_dir / "d").exists()
