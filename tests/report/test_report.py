"""`autoc report`: PNGs and a self-contained HTML page from a stored study."""
import base64
import io
import json
import re
import shutil
from html import escape

import matplotlib.image
import optuna
import pytest

from autoc.candidate import Candidate
from autoc.cli import main
from autoc.latency.model import LookupTableLatencyModel
from autoc.report.breakdown import latency_breakdown
from autoc.search.driver import RUN_OPTIONS_ATTR
from autoc.search.results import best_record, completed_records, pareto_front
from autoc.search.separation import separation_text

PLOTS = ("pareto", "progress", "policy", "latency")


def _report(capsys, *argv):
    code = main(["report", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def records(stored_study):
    study = optuna.load_study(study_name=stored_study.name, storage=stored_study.storage)
    return completed_records(study, budget_ms=stored_study.budget_ms)


def _image_shape(png: bytes) -> tuple[int, ...]:
    return matplotlib.image.imread(io.BytesIO(png), format="png").shape


def _dark_pixels(png: bytes) -> int:
    rgb = matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]
    return int((rgb < 0.2).all(axis=-1).sum())


def _table_first_column(page: str, table_id: str) -> list[str]:
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, flags=re.S).group(1)
    return re.findall(r"<tr><td>([^<]*)</td>", table)


def test_report_writes_every_plot_as_png_and_embeds_it(report):
    page = (report / "report.html").read_text()
    for name in PLOTS:
        png = (report / f"{name}.png").read_bytes()
        height, width, _ = _image_shape(png)
        assert height > 200 and width > 400, name
        embedded = re.search(rf'<img id="{name}" alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
        assert embedded is not None, name
        assert base64.b64decode(embedded.group(1)) == png
    # Self-contained: nothing fetched from elsewhere.
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_report_tables_hold_the_front_and_the_chosen_policy(report, records, stored_study):
    page = (report / "report.html").read_text()
    front = pareto_front(records)
    assert _table_first_column(page, "front") == [str(r.number) for r in front]
    best = best_record(records)
    chosen = Candidate.from_dict(best.candidate)
    assert _table_first_column(page, "policy") == chosen.netspec().layer_names()
    assert f"trial {best.number}, accuracy {best.accuracy:.4f}" in page
    assert escape(separation_text(best, records, run_dir=stored_study.run_dir)) in page  # which trials the estimate does not separate from it


def test_breakdown_sums_to_the_stored_prediction(stored_study, records):
    best = best_record(records)
    chosen = Candidate.from_dict(best.candidate)
    breakdown = latency_breakdown(chosen, device="testdev", runs_dir=stored_study.runs_dir)
    assert breakdown.unavailable is None
    names = [row.name for row in breakdown.rows]
    assert names[0] == "stem" and names[-2:] == ["head", "overhead"]
    assert {row.precision for row in breakdown.rows[:-1]} <= {"fp32", "int8"}
    model = LookupTableLatencyModel(stored_study.profile, profile_path=None, measure_missing=False)
    assert breakdown.total_ms == pytest.approx(best.latency_ms)
    assert breakdown.total_ms == pytest.approx(model.predict(chosen.netspec(), chosen.policy))


def test_breakdown_of_a_search_on_a_shipped_device_reads_the_shipped_profile(tmp_path):
    import optuna as _optuna

    from autoc.latency.device import open_device_model
    from autoc.space import load_space, sample_candidate

    space = load_space("fbnet-cifar")
    candidate = sample_candidate(space, _optuna.create_study().ask(), num_classes=10)
    breakdown = latency_breakdown(candidate, device="pixel3", runs_dir=tmp_path / "runs")  # nothing calibrated there
    assert breakdown.unavailable is None and breakdown.profile.parent.name == "profiles"
    model = open_device_model("pixel3", runs_dir=tmp_path / "runs")
    assert breakdown.total_ms == pytest.approx(model.predict(candidate.netspec(), candidate.policy))


def test_existing_report_is_kept_without_force_and_replaced_with_it(stored_study, report, tmp_path, capsys):
    out = tmp_path / "r"
    shutil.copytree(report, out)
    (out / "report.html").write_text("<!DOCTYPE html><p>old report")  # of the kinds a report writes:
    (out / "pareto.png").write_bytes(b"\x89PNG\r\n\x1a\nold plot")  # --force replaces only those
    code, _, err = _report(capsys, stored_study.run_dir, "--out", out)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "report.html").read_text() == "<!DOCTYPE html><p>old report"
    assert (out / "pareto.png").read_bytes() == b"\x89PNG\r\n\x1a\nold plot"
    code, stdout, _ = _report(capsys, stored_study.run_dir, "--out", out, "--force")
    assert code == 0 and str(out / "report.html") in stdout
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    plot = (out / "pareto.png").read_bytes()
    assert plot.startswith(b"\x89PNG") and plot != b"\x89PNG\r\n\x1a\nold plot"


def _copy_without_profile(stored_study, root):
    """The study alone, in a runs tree with no device profiles and no recorded runs_dir."""
    run_dir = root / "runs" / stored_study.name
    run_dir.mkdir(parents=True)
    shutil.copyfile(stored_study.run_dir / "study.db", run_dir / "study.db")
    study = optuna.load_study(study_name=stored_study.name, storage=f"sqlite:///{run_dir / 'study.db'}")
    study.set_user_attr(RUN_OPTIONS_ATTR, {})
    return run_dir


def test_missing_profile_is_said_on_the_page_not_measured(stored_study, tmp_path, capsys):
    run_dir = _copy_without_profile(stored_study, tmp_path)
    code, _, err = _report(capsys, run_dir)
    assert code == 0
    page = (run_dir / "report" / "report.html").read_text()
    expected = tmp_path / "runs" / "devices" / "testdev.json"
    assert "Latency breakdown unavailable" in page and str(expected) in page
    assert "no latency profile" in err
    assert not (run_dir / "report" / "latency.png").exists()
    assert (run_dir / "report" / "policy.png").is_file()
    assert not expected.exists()


def test_baselines_are_listed_and_drawn(stored_study, report, tmp_path, capsys):
    run_dir = _copy_without_profile(stored_study, tmp_path)
    baselines = [
        {"name": "MobileNetV2 x0.5", "accuracy": 0.83, "latency_ms": 3.1, "size_bytes": 800_000},
        {"name": "MobileNetV2 x1.0", "accuracy": 0.90, "latency_ms": 9.4, "size_bytes": 2_300_000},
    ]
    (run_dir / "baselines.json").write_text(json.dumps({"schema": "autoc.baselines/1", "baselines": baselines}))
    code, _, err = _report(capsys, run_dir, "--out", tmp_path / "with")
    assert code == 0 and "No baselines drawn" not in err
    page = (tmp_path / "with" / "report.html").read_text()
    assert _table_first_column(page, "baselines") == [b["name"] for b in baselines]
    plain, drawn = (_dark_pixels((d / "pareto.png").read_bytes()) for d in (report, tmp_path / "with"))
    assert drawn > plain + 100  # black diamonds, their names and a legend entry


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"schema": "other/1", "baselines": []}), "schema 'other/1'"),
        (json.dumps({"schema": "autoc.baselines/1", "baselines": [{"name": "m"}]}), "baselines[0] lacks accuracy"),
        (json.dumps({"schema": "autoc.baselines/1", "baselines": [
            {"name": "m", "accuracy": 0.9, "latency_ms": -1, "size_bytes": 1}]}), "baselines[0].latency_ms"),
    ],
    ids=["bad-json", "wrong-schema", "missing-field", "negative-latency"],
)
def test_corrupt_baselines_exit_2_and_write_nothing(stored_study, tmp_path, capsys, content, message):
    run_dir = _copy_without_profile(stored_study, tmp_path)
    (run_dir / "baselines.json").write_text(content)
    code, _, err = _report(capsys, run_dir)
    assert code == 2 and message in err and "baselines.json" in err
    assert len(err.strip().splitlines()) == 1
    assert not (run_dir / "report").exists()


def test_report_of_a_directory_without_a_study_exits_2(tmp_path, capsys):
    code, _, err = _report(capsys, tmp_path)
    assert code == 2 and "holds no study.db" in err
    assert not (tmp_path / "report").exists()
