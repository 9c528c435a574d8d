"""A stored study is never lost or silently changed by a bad command: study names that are paths
or autoc's own folders, a damaged study.db, a renamed run directory, a --trials below what ran,
counts out of range. Each refusal is one line with exit 2, and the stored bytes stay as they were."""
import shutil
import subprocess
import sys

import optuna
import pytest

from autoc.cli import main
from conftest import TINY_FLAGS

STUDY = "done"


def _search(tiny_space, runs_dir, *extra: str) -> list[str]:
    return ["search", *TINY_FLAGS, "--space", str(tiny_space), "--runs-dir", str(runs_dir), *extra]


@pytest.fixture(scope="module")
def finished(tiny_space, warm_runs, tmp_path_factory):
    """runs/ with a real 2-trial study, searched once per module and copied by each test."""
    runs = tmp_path_factory.mktemp("finished") / "runs"
    for cache in ("devices", "cache"):
        shutil.copytree(warm_runs / cache, runs / cache)
    assert main(_search(tiny_space, runs, "--study", STUDY, "--trials", "2")) == 0
    return runs


@pytest.fixture
def runs(finished, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(finished, copy)
    return copy


def _trials(run_dir, study=STUDY) -> int:
    return len(optuna.load_study(study_name=study, storage=f"sqlite:///{run_dir / 'study.db'}").trials)


def _refused(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("name, rule", [
    ("../escape", "not usable as a run directory name"), ("a/b", "not usable as a run directory name"),
    (".hidden", "not usable as a run directory name"), ("cache", "one of autoc's own folders"),
    ("devices", "one of autoc's own folders"),
])
def test_a_study_name_that_is_a_path_or_an_autoc_folder_is_refused(tiny_space, runs, capsys, name, rule):
    before = _tree(runs.parent)
    err = _refused(capsys, _search(tiny_space, runs, "--study", name, "--trials", "1"))
    assert rule in err and repr(name) in err and "--study" in err
    assert _tree(runs.parent) == before  # nothing written inside or outside the runs directory


def _damage(db):
    """Overwrite one page in the middle of the file, its header left sound."""
    data = bytearray(db.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page
    data[middle:middle + page] = b"\xa5" * page
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("command", ["show", "report", "export", "resume"])
def test_a_study_db_damaged_in_the_middle_is_named_with_how_to_recover(tiny_space, runs, capsys, command):
    run_dir = runs / STUDY
    db = run_dir / "study.db"
    _damage(db)
    before = db.read_bytes()
    argv = _search(tiny_space, runs, "--resume", str(run_dir)) if command == "resume" else [command, str(run_dir)]
    err = _refused(capsys, argv)
    assert f"study database {db} is damaged" in err
    assert f'sqlite3 "{db}" ".recover" | sqlite3 new.db' in err and "--storage sqlite:///new.db" in err
    assert db.read_bytes() == before


def test_a_renamed_run_directory_is_resumed_in_place(tiny_space, runs, capsys):
    renamed = runs / "best"
    (runs / STUDY).rename(renamed)
    assert main(["show", str(renamed)]) == 0  # read by its own study.db's study, whatever the folder's name
    assert STUDY in capsys.readouterr().out
    assert main(["search", "--resume", str(renamed), "--trials", "3", "--no-progress"]) == 0
    assert _trials(renamed) == 3 and not (runs / STUDY).exists()  # no second run directory under the old name
    assert (renamed / "best_policy.json").is_file() and len(list((renamed / "weights").glob("trial-*.pt"))) >= 1
    # naming the stored study as well is the same study, not "two different studies"
    assert main(["search", "--resume", str(renamed), "--study", STUDY, "--trials", "3", "--no-progress"]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--trials", "1"], "has already run 2, more than --trials 1: --trials is the study's total"),
    (["--finetune-steps", "-5"], "argument --finetune-steps: takes a whole number >= 0"),
    (["--budget-ms", "inf"], "argument --budget-ms: takes a finite number > 0"),
    (["--timeout", "0"], "argument --timeout: takes a finite number > 0"),
])
def test_a_refused_resume_leaves_the_stored_study_as_it_was(runs, extra, message):
    db = runs / STUDY / "study.db"
    before = db.read_bytes()
    done = subprocess.run([sys.executable, "-m", "autoc.cli", "search", "--resume", str(runs / STUDY), *extra],
                          capture_output=True, text=True, timeout=300)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1 and message in err, err
    assert db.read_bytes() == before and _trials(runs / STUDY) == 2


def test_a_runs_dir_that_is_a_file_is_refused_before_any_work(tiny_space, tmp_path, capsys):
    not_a_dir = tmp_path / "runs"
    not_a_dir.write_text("a file")
    err = _refused(capsys, _search(tiny_space, not_a_dir, "--study", "x", "--trials", "1"))
    assert f"{not_a_dir} is not a directory" in err and "--runs-dir" in err
    assert not_a_dir.read_text() == "a file"


def _refused_in_read_only(root, argv) -> str:
    """``autoc ARGV`` in a subprocess with ``root`` read-only (to root as well): its one-line error."""
    from test_search_bad_input import _without_write_override

    paths = [root, *root.rglob("*")]
    for path in paths:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        done = subprocess.run([*_without_write_override(), sys.executable, "-m", "autoc.cli", *argv],
                              capture_output=True, text=True, timeout=120)
    finally:
        for path in paths:
            path.chmod(path.stat().st_mode | 0o200)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_read_only_runs_dir_is_refused_before_the_host_calibration(tiny_space, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()  # empty: the host would be calibrated first, for minutes, were it not refused
    err = _refused_in_read_only(runs, _search(tiny_space, runs, "--study", "x", "--trials", "1"))
    assert f"directory {runs} is not writable" in err and "--runs-dir" in err
    assert list(runs.iterdir()) == []


def test_an_export_into_a_read_only_run_directory_is_one_line(runs):
    run_dir = runs / STUDY
    before = _tree(run_dir)
    err = _refused_in_read_only(run_dir, ["export", str(run_dir)])
    assert f"directory {run_dir} is not writable" in err and "--output" in err
    assert _tree(run_dir) == before


def test_a_search_never_echoes_its_storage_password(tiny_space, runs, capsys):
    err = _refused(capsys, _search(tiny_space, runs, "--study", "pw", "--trials", "1",
                                   "--storage", "postgresql://u:s3cretPW@127.0.0.1:1/db"))
    assert "s3cretPW" not in err and "postgresql+psycopg2://u:***@127.0.0.1:1/db" in err


def test_a_study_of_other_settings_is_refused_naming_the_callers_study_field(tmp_path):
    from autoc.errors import StorageError
    from autoc.search.storage import default_storage_url, open_storage, open_study

    storage = open_storage(default_storage_url(tmp_path))
    sampler = optuna.samplers.RandomSampler(seed=0)
    open_study(storage=storage, name="s", identity={"space": "a"}, sampler=sampler, directions=["maximize"])
    with pytest.raises(StorageError, match="or pick a new storage.study name$") as raised:
        open_study(storage=storage, name="s", identity={"space": "b"}, sampler=sampler, directions=["maximize"])
    assert raised.value.fields == ("storage.study",)
    with pytest.raises(StorageError, match="or pick a new study name$") as raised:  # autoc compress's field
        open_study(storage=storage, name="s", identity={"space": "b"}, sampler=sampler, directions=["maximize"],
                   study_field="study")
    assert raised.value.fields == ("study",)
