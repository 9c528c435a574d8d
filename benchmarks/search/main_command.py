"""The main command on a fresh directory: `autoc search --budget-ms 20` on the embedded default.

    python -m benchmarks.search.main_command                # runs it once (minutes), then records it
    python -m benchmarks.search.main_command --from DIR     # records a run made by hand in DIR

The command runs from an empty temporary directory (nothing cached: no teacher, no profile),
under /usr/bin/time -v, with no other flag. A run made by hand is one of
`cd DIR && /usr/bin/time -v autoc search --budget-ms 20 >stdout.txt 2>stderr.txt`. Recorded: wall
time and peak memory, the trials priced over the budget (never trained) and those trained within
it, the predicted latencies the sampled candidates spanned, and the chosen candidate's predicted
latency and accuracy.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from autoc.search.options import field_default
from autoc.search.stored import open_stored_run

from benchmarks.common import record_result

BUDGET_MS = 20.0
ROOT = Path(__file__).resolve().parents[2]


def run_fresh(directory: Path) -> None:
    """The main command in ``directory``, its output in stdout.txt and stderr.txt there."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's autoc, wherever the package is installed
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "autoc.cli", "search", "--budget-ms", f"{BUDGET_MS:g}"]
    with open(directory / "stdout.txt", "w") as out, open(directory / "stderr.txt", "w") as err:
        done = subprocess.run(command, cwd=directory, env=env, stdout=out, stderr=err)
    if done.returncode != 0:
        raise SystemExit(f"the main command failed (exit {done.returncode}); see {directory / 'stderr.txt'}")


def _time_field(text: str, name: str) -> str:
    match = re.search(rf"{re.escape(name)}: (.+)", text)
    if match is None:
        raise SystemExit(f"no '{name}' in the /usr/bin/time -v output; run the command under /usr/bin/time -v")
    return match.group(1).strip()


def _minutes(clock: str) -> str:
    """/usr/bin/time's h:mm:ss or m:ss.ss as ``12 min 5 s``."""
    parts = [float(p) for p in clock.split(":")]
    seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    return f"{int(seconds // 60)} min {round(seconds % 60)} s"


def figures_of(directory: Path) -> dict:
    """The recorded figures of the run in ``directory``."""
    stderr = (directory / "stderr.txt").read_text()
    run_dir = next((directory / "runs").glob("*/study.db")).parent
    stored = open_stored_run(run_dir)
    records = stored.records()
    over = [r for r in records if not r.feasible]
    chosen = stored.chosen(records)
    latencies = [r.latency_ms for r in records]
    return {
        "wall time": _minutes(_time_field(stderr, "Elapsed (wall clock) time (h:mm:ss or m:ss)")),
        "peak RSS (GiB)": round(int(_time_field(stderr, "Maximum resident set size (kbytes)")) / 2**20, 1),
        "CPU the command got (% of one core; others share the machine)": _time_field(stderr, "Percent of CPU this job got"),
        "space, device": f"{stored.space_name}, {stored.device}",
        "trials": len(records),
        "trials over the budget (not trained)": len(over),
        "trials trained within the budget": len(records) - len(over),
        "predicted latency of the sampled candidates (ms)": f"{min(latencies):.1f}-{max(latencies):.1f}",
        "chosen: predicted latency (ms)": round(chosen.latency_ms, 2),
        "chosen: digits validation accuracy (estimate)": round(chosen.accuracy, 4),
        "chosen: the same estimate with training seed 1": None if chosen.rerun is None else round(chosen.rerun, 4),
    }


def main(argv: list[str] | None = None) -> int:
    """Run (or read) the main command and record its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="a directory where the main command was run by hand (stdout.txt, stderr.txt, runs/)")
    args = parser.parse_args(argv)
    run = "cd $(mktemp -d) && /usr/bin/time -v python -m autoc.cli search --budget-ms 20 >stdout.txt 2>stderr.txt"
    if args.source is not None:
        figures = figures_of(args.source)
        run += " (run by hand; this benchmark read its output)"
    else:
        with tempfile.TemporaryDirectory() as directory:
            run_fresh(Path(directory))
            figures = figures_of(Path(directory))
    for name, value in figures.items():
        print(f"{name}: {value}")
    record_result(
        "search.main_command", "default",
        title=f"The main command on a fresh directory: autoc search --budget-ms {BUDGET_MS:g} "
              f"({field_default('space')} on the shipped {field_default('device')} profile, digits)",
        figures=figures,
        run=run,
        note="Nothing cached: the teacher is trained and every trial estimated from scratch; the device profile "
             "is shipped, so nothing is calibrated. Trials over the budget are priced by the profile and never "
             "trained. Training runs on this machine's CPU, which others share, so the wall time varies.",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
