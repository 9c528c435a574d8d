"""No output path of `autoc export` or `autoc report` replaces stored data (a study database, a
device profile, a cache file, the run's own weights or best policy), not even with --force;
--force replaces only a file of the kind the command writes."""
import shutil

import optuna
import pytest

from autoc.cli import main
from autoc.export.formats import FORMATS


@pytest.fixture
def runs(tiny_run, tmp_path):
    """A copy of the tiny search's runs directory (study, device profile, caches)."""
    copy = tmp_path / "runs"
    shutil.copytree(tiny_run.parent, copy)
    return copy


def _trial_count(run_dir) -> int:
    return len(optuna.load_study(study_name="t", storage=f"sqlite:///{run_dir / 'study.db'}").trials)


def _refused(capsys, argv, *, expect: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and expect in err, err
    return err


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_no_export_format_replaces_the_study_database_even_forced(runs, capsys, fmt):
    db = runs / "t" / "study.db"
    before, trials = db.read_bytes(), _trial_count(runs / "t")
    err = _refused(capsys, ["export", str(runs / "t"), "--format", fmt, "-o", str(db), "--force"],
                   expect="is an SQLite database (a study's storage), which no output replaces")
    assert str(db) in err and "choose another output path" in err
    assert db.read_bytes() == before and _trial_count(runs / "t") == trials


def test_a_copy_of_a_study_database_under_another_name_is_not_replaced(runs, tmp_path, capsys):
    copy = tmp_path / "backup.onnx"
    shutil.copy(runs / "t" / "study.db", copy)
    before = copy.read_bytes()
    _refused(capsys, ["export", str(runs / "t"), "--format", "onnx", "-o", str(copy), "--force"],
             expect="is an SQLite database")
    assert copy.read_bytes() == before


def test_device_profiles_caches_and_the_runs_own_files_are_not_replaced(runs, capsys):
    [profile] = (runs / "devices").glob("*.json")
    cache = sorted((runs / "cache").glob("teacher-*.pt"))[0]  # the search's and its seed-noise rerun's
    [weights, *_] = sorted((runs / "t" / "weights").glob("trial-*.pt"))
    best = runs / "t" / "best_policy.json"
    cases = [(profile, "nni", "a device profile"), (cache, "state-dict", "a cache file"),
             (weights, "state-dict", "the run's own trained weights"), (best, "policy", "the run's own chosen policy")]
    for path, fmt, kind in cases:
        before = path.read_bytes()
        _refused(capsys, ["export", str(runs / "t"), "--format", fmt, "-o", str(path), "--force"], expect=kind)
        assert path.read_bytes() == before


def test_a_policy_export_never_replaces_stored_data_with_its_weights_file(runs, tmp_path, capsys):
    # the weights of p.policy.json are written to p.weights.pt: that path is guarded too
    weights = tmp_path / "p.weights.pt"
    shutil.copy(runs / "t" / "study.db", weights)
    before = weights.read_bytes()
    _refused(capsys, ["export", str(runs / "t"), "-o", str(tmp_path / "p.policy.json"), "--force"],
             expect="is an SQLite database")
    assert weights.read_bytes() == before and not (tmp_path / "p.policy.json").exists()


def test_force_replaces_only_a_file_of_the_kind_the_format_writes(runs, tmp_path, capsys):
    other = tmp_path / "notes.csv"
    other.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # a PNG under a .csv name
    err = _refused(capsys, ["export", str(runs / "t"), "--format", "csv", "-o", str(other), "--force"],
                   expect="is not a CSV text")
    assert "--force replaces only a file of the kind" in err
    assert other.read_bytes().startswith(b"\x89PNG")
    layers = tmp_path / "layers.csv"
    layers.write_text("name,ms\n")
    assert main(["export", str(runs / "t"), "--format", "csv", "-o", str(layers), "--force"]) == 0
    assert layers.read_text() != "name,ms\n"


def test_a_report_never_replaces_stored_data_in_its_output_directory(runs, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    shutil.copy(runs / "t" / "study.db", out / "pareto.png")  # a study kept under a plot's name
    before = (out / "pareto.png").read_bytes()
    _refused(capsys, ["report", str(runs / "t"), "--out", str(out), "--force"], expect="is an SQLite database")
    assert (out / "pareto.png").read_bytes() == before and not (out / "report.html").exists()
    _refused(capsys, ["report", str(runs / "t"), "--out", str(runs / "t" / "study.db"), "--force"],
             expect=f"--out {runs / 't' / 'study.db'} is a file, not a directory")
