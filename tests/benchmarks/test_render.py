"""The results pages are rendered from the benchmarks' result records, and a re-run replaces its figure.

The benchmarks run from the checkout (they are not installed), so these run them as `python -m` from its root.
"""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def record(benchmark: str, key: str, figures: dict, **extra) -> dict:
    return {"schema": "autoc.benchmark-result/1", "benchmark": benchmark, "key": key,
            "title": f"{benchmark} on {key}", "date": "2026-12-01T10:00:00+00:00",
            "machine": {"cpu": "Test CPU", "cores": 3}, "command": f"python -m benchmarks.{benchmark} --{key}",
            "complete": True, "figures": figures, **extra}


def write(results: Path, rec: dict) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{rec['benchmark']}--{rec['key']}.json").write_text(json.dumps(rec))


def test_each_area_with_records_gets_a_page_with_figure_machine_date_and_command(tmp_path):
    results, pages = tmp_path / "results", tmp_path / "pages"
    write(results, record("latency.accuracy", "host", {"Kendall tau": 0.9061, "MAPE (%)": 2.11}))
    write(results, record("search.quality", "old", {"gain (points)": 2.7},
                          source="transcribed from README.md at commit abc; re-run the command to replace"))

    done = run_module("-m", "benchmarks.render", "--results-dir", str(results), "--out-dir", str(pages))

    assert done.returncode == 0, done.stderr
    latency = (pages / "latency.md").read_text()
    assert "## latency.accuracy on host" in latency
    assert "| Kendall tau | 0.906 |" in latency
    assert "Measured 2026-12-01 on Test CPU, 3 cores. Command: `python -m benchmarks.latency.accuracy --host`" in latency
    search = (pages / "search.md").read_text()
    assert "Test CPU, 3 cores[^1]." in search
    assert "[^1]: transcribed from README.md at commit abc; re-run the command to replace" in search
    assert not (pages / "estimates.md").exists()  # no records, no page
    index = (pages / "README.md").read_text()
    assert "[Latency prediction](latency.md)" in index and "[Search quality](search.md)" in index


def test_a_re_measured_figure_replaces_the_old_one_and_leaves_other_configurations(tmp_path):
    results, pages = tmp_path / "results", tmp_path / "pages"
    write(results, record("estimate.seeds", "cifar10-today", {"seed-to-seed Kendall tau, mean": 0.335},
                          source="transcribed; re-run the command to replace"))
    write(results, record("estimate.seeds", "digits-today", {"seed-to-seed Kendall tau, mean": 0.418}))
    rerun = ("from pathlib import Path; from benchmarks.common import record_result; "
             f"record_result('estimate.seeds', 'cifar10-today', title='re-measured', "
             f"figures={{'seed-to-seed Kendall tau, mean': 0.812}}, results_dir=Path({str(results)!r}))")

    measured = run_module("-c", rerun)
    done = run_module("-m", "benchmarks.render", "--results-dir", str(results), "--out-dir", str(pages))

    assert measured.returncode == 0, measured.stderr
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in results.iterdir()) == ["estimate.seeds--cifar10-today.json",
                                                       "estimate.seeds--digits-today.json"]
    page = (pages / "estimates.md").read_text()
    assert "| seed-to-seed Kendall tau, mean | 0.812 |" in page
    assert "0.335" not in page and "transcribed" not in page  # the new record carries no old footnote
    assert "| seed-to-seed Kendall tau, mean | 0.418 |" in page
    assert "Command: `python -c" in page  # the command that produced the figure, as run


def test_a_results_file_that_is_not_a_record_is_refused_with_the_fix(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "old.json").write_text(json.dumps({"counts": {"tried": 1}}))

    done = run_module("-m", "benchmarks.render", "--results-dir", str(results), "--out-dir", str(tmp_path / "pages"))

    assert done.returncode != 0
    assert "old.json: not a benchmark result record" in done.stderr
    assert "benchmarks.common.record_result" in done.stderr
