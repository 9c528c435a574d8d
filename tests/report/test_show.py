"""`autoc show`: a study summarised from its storage alone."""
import re
import shutil

import numpy as np
import optuna
import pytest

from autoc.cli import main
from autoc.search.results import CORRECT_ATTR, best_record, completed_records, pareto_front
from autoc.search.separation import decode_correct


def _show(capsys, *argv):
    code = main(["show", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _front_trials(out: str) -> list[int]:
    table = out.split("Pareto front", 1)[1].split("best under", 1)[0]
    return [int(m) for m in re.findall(r"^\s+(\d+)\s+0\.\d{4}", table, flags=re.M)]


def test_show_prints_states_front_best_and_policy_file(stored_study, capsys):
    code, out, _ = _show(capsys, stored_study.run_dir)
    assert code == 0
    assert "12 complete, 1 running, 0 waiting, 1 pruned, 1 fail" in out
    records = completed_records(
        optuna.load_study(study_name="fixture", storage=stored_study.storage), budget_ms=stored_study.budget_ms
    )
    feasible = sum(r.feasible for r in records)
    assert 0 < feasible < len(records)
    assert f"feasible (trained within {stored_study.budget_ms:g} ms): {feasible} of 12 complete" in out
    assert _front_trials(out) == [r.number for r in pareto_front(records)]
    best = best_record(records)
    assert f"best under {stored_study.budget_ms:g} ms: trial {best.number}, accuracy {best.accuracy:.4f}" in out
    assert f"best_policy.json: {stored_study.run_dir / 'best_policy.json'} (trial {best.number})" in out


def test_show_reads_a_storage_url_without_profile_or_policy_file(stored_study, tmp_path, capsys):
    """--storage URL + --study, as for a PostgreSQL study; nothing beside the storage is needed."""
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    shutil.copyfile(stored_study.run_dir / "study.db", elsewhere / "study.db")
    url = f"sqlite:///{elsewhere / 'study.db'}"
    code, out, _ = _show(capsys, "fixture", "--storage", url)
    assert code == 0
    assert "study fixture: space mbv2-cifar, device testdev" in out
    assert "best_policy.json: not written" in out
    assert _front_trials(out)


def _corrupt(run_dir):
    (run_dir / "study.db").write_bytes(b"this is not a database\n" * 64)


@pytest.mark.parametrize(
    "setup, extra, message",
    [
        (lambda d: None, [], "holds no study.db"),
        (_corrupt, [], "is not an SQLite database"),
        ("copy", ["--study", "nope"], "has no study 'nope'"),
    ],
    ids=["no-study-db", "corrupt-study-db", "unknown-study"],
)
def test_show_bad_input_is_one_line_exit_2_and_leaves_files(stored_study, tmp_path, capsys, setup, extra, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if setup == "copy":
        shutil.copyfile(stored_study.run_dir / "study.db", run_dir / "study.db")
    else:
        setup(run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    code, out, err = _show(capsys, run_dir, *extra)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_a_study_without_trials_is_shown_and_reported(tmp_path, capsys):
    from autoc.search.driver import DIRECTIONS
    from autoc.search.storage import IDENTITY_PREFIX, default_storage_url

    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    study = optuna.create_study(study_name="empty", storage=default_storage_url(run_dir), directions=DIRECTIONS)
    for key, value in {"space": "mbv2-cifar:0", "device": "host", "budget_ms": "5.0"}.items():
        study.set_user_attr(IDENTITY_PREFIX + key, value)
    code, out, _ = _show(capsys, run_dir)
    assert code == 0 and "0 complete" in out and "best under 5 ms: none yet" in out
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report" / "report.html").read_text()
    assert "No feasible trial yet" in page
    assert sorted(p.name for p in (run_dir / "report").glob("*.png")) == ["pareto.png", "progress.png"]


def test_report_of_a_storage_study_without_run_directory_needs_out(stored_study, tmp_path, capsys):
    url = stored_study.storage
    code = main(["report", str(tmp_path / "nowhere"), "--storage", url, "--study", stored_study.name])
    err = capsys.readouterr().err
    assert code == 2 and "--out DIR" in err and not (tmp_path / "nowhere").exists()


def test_show_names_the_trials_the_estimate_does_not_separate_from_the_best(stored_study, capsys):
    """Each feasible trial stores which validation images it got right; `autoc show` names the trials
    whose deficit against the best is within 1.96 paired standard errors, recomputed here per image."""
    code, out, _ = _show(capsys, stored_study.run_dir)
    assert code == 0
    study = optuna.load_study(study_name="fixture", storage=stored_study.storage)
    feasible = [t for t in study.trials if t.user_attrs.get("feasible")]
    best = best_record(completed_records(study, budget_ms=stored_study.budget_ms))
    hits = {t.number: decode_correct(t.user_attrs[CORRECT_ATTR]) for t in feasible}
    ties = []
    for number, bits in hits.items():
        assert bits.mean() == pytest.approx(study.trials[number].values[0])
        if number != best.number:
            difference = hits[best.number].astype(float) - bits  # per image: -1, 0 or 1
            if difference.mean() <= 1.96 * difference.std() / np.sqrt(difference.size):
                ties.append(number)
    line = next(line for line in out.splitlines() if line.startswith("estimate noise:"))
    assert f"on its {hits[best.number].size:,} validation images" in line
    if ties:  # the fixture's accuracies spread over a few points: some trials tie, some do not
        named = line.split(" (trial")[1].lstrip("s ").split(")")[0]
        assert sorted(int(n) for n in named.split(", ")) == sorted(ties)
    assert 0 < len(ties) < len(hits) - 1, "the fixture should hold both tied and separated trials"
