"""A run directory is self-contained: what a study stores names files relative to it, so a copied
or moved ``runs/<study>`` exports, reports, shows and resumes on its own, the original gone."""
import json
import shutil
import sqlite3

import pytest

from autoc.cli import main
from autoc.export.formats import FORMATS
from autoc.run_paths import resolve_runs_dir, resolve_stored, stored_path, stored_runs_dir

SPACE = """
name: tiny-moved
input_size: 32              # the default pixel3 profile has 32 px tables
activation: relu6
stem: {width: [8], stride: 1}
stages:
  - {depth: [1], width: [8], stride: 1, kernel: [3], expansion: [1], per_block: true}
  - {depth: [1, 2], width: [16], stride: 2, kernel: [3], expansion: [3], per_block: true}
head: {width: [32]}
compression: {keep_ratio: [0.5, 1.0], precision: [fp32, int8], weight_bits: [8]}
"""
SMALL = ["--finetune-steps", "3", "--teacher-steps", "5", "--max-train", "200", "--max-val", "100", "--no-progress",
         "--cpus-per-worker", "1"]


def test_a_path_inside_the_run_directory_is_stored_relative_and_one_outside_absolute(tmp_path):
    run = tmp_path / "runs" / "s"
    assert stored_path(run / "weights" / "trial-3.pt", run_dir=run) == "weights/trial-3.pt"
    assert stored_path(tmp_path / "data", run_dir=run) == str(tmp_path / "data")
    assert stored_runs_dir(tmp_path / "runs", run_dir=run) == ".."
    assert stored_runs_dir(tmp_path / "elsewhere", run_dir=run) == str(tmp_path / "elsewhere")


def test_a_relative_stored_path_resolves_against_where_the_run_directory_is_now(tmp_path):
    moved = tmp_path / "moved" / "s"
    assert resolve_stored("weights/trial-3.pt", run_dir=moved) == moved / "weights" / "trial-3.pt"
    assert resolve_runs_dir("..", run_dir=moved) == tmp_path / "moved"
    assert resolve_runs_dir(None, run_dir=moved) == tmp_path / "moved"


def test_an_older_studys_absolute_path_falls_back_to_its_tail_under_the_moved_run_directory(tmp_path):
    moved = tmp_path / "moved" / "s"
    (moved / "weights").mkdir(parents=True)
    (moved / "weights" / "trial-3.pt").write_bytes(b"w")
    gone = tmp_path / "gone" / "runs" / "s" / "weights" / "trial-3.pt"
    assert resolve_stored(str(gone), run_dir=moved) == moved / "weights" / "trial-3.pt"
    assert resolve_stored(str(tmp_path / "gone" / "x.pt"), run_dir=moved) == tmp_path / "gone" / "x.pt"  # named as stored
    kept = tmp_path / "kept.pt"
    kept.write_bytes(b"k")
    assert resolve_stored(str(kept), run_dir=moved) == kept  # an absolute path that exists is used
    assert resolve_runs_dir(str(tmp_path / "gone" / "runs"), run_dir=moved) == tmp_path / "moved"


def _stored_text(database):
    """Every study and trial attribute of a study database, as stored (JSON text)."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT value_json FROM study_user_attributes UNION ALL "
                                  "SELECT value_json FROM trial_user_attributes").fetchall()
    return " ".join(row[0] for row in rows)


def test_a_copied_run_directory_exports_reports_shows_and_resumes_with_the_original_gone(tmp_path, capsys):
    original = tmp_path / "original"
    original.mkdir()
    (original / "tiny-moved.yaml").write_text(SPACE)
    assert main(["search", "--budget-ms", "50", "--space", str(original / "tiny-moved.yaml"),
                 "--runs-dir", str(original / "runs"), "--study", "t", "--trials", "3", "--finalists", "2",
                 "--finalist-steps", "5", *SMALL]) == 0
    stored = _stored_text(original / "runs" / "t" / "study.db")
    assert '"weights": "finalists/' in stored and str(original) not in stored  # nothing names the original
    moved = tmp_path / "moved"
    shutil.copytree(original / "runs", moved)  # the run directory with the runs dir's shared profile and caches
    shutil.rmtree(original)
    run = moved / "t"
    capsys.readouterr()

    for name in FORMATS:
        assert main(["export", str(run), "--format", name, "--no-check"]) == 0, capsys.readouterr().err
    exported = sorted(p.name for p in (run / "export").iterdir())
    assert len(exported) == len(FORMATS) + 1  # the policy's weights beside it
    assert main(["export", str(run), "--format", "onnx", "-o", str(tmp_path / "checked.onnx"),
                 "--allow-drift"]) == 0  # timed too; a loaded machine may drift, which is not under test here
    assert main(["show", str(run)]) == 0
    assert main(["report", str(run)]) == 0
    assert (run / "report" / "latency.png").is_file()  # the shared profile found in the copy
    assert "latency" not in capsys.readouterr().err.lower()
    assert main(["search", "--resume", str(run), "--trials", "4"]) == 0
    out = capsys.readouterr().out
    assert "4 trials (1 this run)" in out and str(run / "best_policy.json") in out
    assert json.loads((run / "best_policy.json").read_text())["study"] == "t"
    assert not original.exists()  # nothing was written where the run was


def test_a_study_in_a_server_storage_opened_by_name_finds_its_run_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny-moved.yaml").write_text(SPACE)
    url = f"sqlite:///{tmp_path / 'server.db'}"  # stands for a PostgreSQL storage: not in the run directory
    assert main(["search", "--budget-ms", "50", "--space", str(tmp_path / "tiny-moved.yaml"), "--storage", url,
                 "--runs-dir", str(tmp_path / "runs"), "--study", "s", "--trials", "2", *SMALL]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the name "s" is no directory here
    capsys.readouterr()
    assert main(["export", "s", "--storage", url, "--format", "state-dict"]) == 0, capsys.readouterr().err
    assert list((tmp_path / "runs" / "s" / "export").glob("trial-*.state_dict.pt"))


def test_an_older_study_with_absolute_paths_moved_exports_and_reports_from_its_new_place(tmp_path, capsys):
    (tmp_path / "tiny-moved.yaml").write_text(SPACE)
    original = tmp_path / "original" / "runs"
    assert main(["search", "--budget-ms", "50", "--space", str(tmp_path / "tiny-moved.yaml"),
                 "--runs-dir", str(original), "--study", "old", "--trials", "2", *SMALL]) == 0
    run = original / "old"
    with sqlite3.connect(run / "study.db") as connection:  # as an earlier autoc stored them: absolute
        connection.execute("UPDATE trial_user_attributes SET value_json = '\"' || ? || substr(value_json, 2) "
                           "WHERE key = 'weights'", (str(run) + "/",))
        options = json.loads(connection.execute("SELECT value_json FROM study_user_attributes "
                                                "WHERE key = 'autoc_run_options'").fetchone()[0])
        options.update(runs_dir=str(original), space=str(tmp_path / "tiny-moved.yaml"))
        connection.execute("UPDATE study_user_attributes SET value_json = ? WHERE key = 'autoc_run_options'",
                           (json.dumps(options),))
    assert f'"{run}/weights/trial-' in _stored_text(run / "study.db")
    moved = tmp_path / "moved"
    shutil.copytree(original, moved)
    shutil.rmtree(tmp_path / "original")
    capsys.readouterr()

    assert main(["export", str(moved / "old"), "--format", "state-dict"]) == 0, capsys.readouterr().err
    assert main(["report", str(moved / "old")]) == 0
    assert (moved / "old" / "report" / "latency.png").is_file()  # the runs dir found as the run's parent

