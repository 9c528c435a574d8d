"""autoc's benchmarks, run from the repository root as ``python -m benchmarks.<area>.<name>``.

Each writes its figures with the machine, date and command to ``benchmarks/results/`` (``common.record_result``);
``python -m benchmarks.render`` renders them as the pages under ``docs/results/``.
"""
from pathlib import Path

# Where every benchmark writes its result record, and where the results pages are rendered to.
RESULTS = Path(__file__).resolve().parent / "results"
PAGES = Path(__file__).resolve().parents[1] / "docs" / "results"
