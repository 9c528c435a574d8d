"""Render the benchmarks' result records (benchmarks/results/*.json) as the results pages under docs/results/.

One page per area (latency, estimates, search, scaling, export, robustness, compress) and an index. Each
record is one figure set of one benchmark and dataset/configuration, with its machine, date and
command; a re-run overwrites its record, so a page always shows the latest measurement.

    python -m benchmarks.render [--results-dir benchmarks/results] [--out-dir docs/results]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import PAGES as PAGES_DIR
from benchmarks import RESULTS

# Area (the benchmark's subpackage) -> page file and what the page answers.
PAGES = {
    "latency": ("latency.md", "Latency prediction",
                "How closely the latency model predicts networks it was not fitted on, and where its error comes from."),
    "estimate": ("estimates.md", "Accuracy estimates",
                 "How steady the search's accuracy estimate is, and how it ranks candidates against a longer "
                 "from-scratch training (the reference recipe)."),
    "search": ("search.md", "Search quality",
               "What a search finds against MobileNetV2 baselines within the same predicted latency, and how its "
               "Pareto front compares with random search."),
    "scaling": ("scaling.md", "Scaling", "Search throughput with several workers, and training on CPU and GPU."),
    "export": ("export.md", "Export parity",
               "The exported model against the search's own figures: accuracy and measured latency."),
    "robustness": ("robustness.md", "Robustness", "Bad inputs and faults across every command."),
    "compress": ("compress.md", "Compressing a user's model",
                 "`autoc compress` on a trained torchvision model against uniform int8, uniform L1 pruning and "
                 "Torch-Pruning's global pruning at the same budgets, all fine-tuned by the same distillation recipe."),
}


def format_value(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def format_machine(machine) -> str:
    if isinstance(machine, dict):
        if "cpu" in machine:
            return f"{machine['cpu']}, {machine.get('cores', '?')} cores"
        return str(machine.get("description", "?"))
    return str(machine)


def render_record(record: dict, footnotes: list[str]) -> list[str]:
    title = record["title"] + ("" if record.get("complete", True) else " (cut short)")
    lines = [f"## {title}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {name} | {format_value(value)} |" for name, value in record["figures"].items()]
    lines.append("")
    if record.get("goal"):
        lines += [f"Goal: {record['goal']}.", ""]
    if record.get("note"):
        lines += [record["note"], ""]
    marker = ""
    if record.get("source"):
        footnotes.append(record["source"])
        marker = f"[^{len(footnotes)}]"
    lines += [f"Measured {record['date'][:10]} on {format_machine(record['machine'])}{marker}. "
              f"Command: `{record['command']}`", ""]
    return lines


def load_records(results_dir: Path) -> list[dict]:
    records = []
    for path in sorted(results_dir.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if "figures" not in record or "benchmark" not in record:
            raise SystemExit(f"{path}: not a benchmark result record (no 'benchmark' or 'figures'); "
                             "write it with benchmarks.common.record_result")
        records.append(record)
    return records


def render(results_dir: Path, out_dir: Path) -> list[Path]:
    """Write one page per area that has records, and the index; returns the pages written."""
    by_area: dict[str, list[dict]] = {}
    for record in load_records(results_dir):
        area = record["benchmark"].split(".")[0]
        if area not in PAGES:
            raise SystemExit(f"{record['benchmark']}: unknown area {area!r}; one of {', '.join(PAGES)}")
        by_area.setdefault(area, []).append(record)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    index = ["# autoc results", "",
             "Current figures, one page per area, rendered from `benchmarks/results/*.json` by "
             "`python -m benchmarks.render`. Every figure names the machine and date it was measured on and the "
             "command that measures it again; a re-run replaces it. What was tried and not adopted: "
             "[design notes](../design-notes.md).", ""]
    for area, (filename, heading, intro) in PAGES.items():
        records = sorted(by_area.get(area, []), key=lambda r: (r["benchmark"], r["key"]))
        if not records:
            continue
        footnotes: list[str] = []
        lines = [f"# {heading}", "", intro, ""]
        for record in records:
            lines += render_record(record, footnotes)
        lines += [f"[^{n}]: {text}" for n, text in enumerate(footnotes, 1)]
        page = out_dir / filename
        page.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
        written.append(page)
        index.append(f"- [{heading}]({filename})")
        index += [f"  - {r['title']}" for r in records]
    (out_dir / "README.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    return written + [out_dir / "README.md"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--out-dir", type=Path, default=PAGES_DIR)
    args = parser.parse_args(argv)
    for page in render(args.results_dir, args.out_dir):
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
