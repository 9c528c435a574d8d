"""Render the benchmarks' JSON results (benchmarks/results/*.json) as the results page docs/results.md.

Each benchmark writes its figure with the command, machine and date; this page shows the
current one per question, so the README can link it instead of copying figures by hand.

    python -m benchmarks.render
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "results.md"


def _recipe(options: dict) -> str:
    """The weight source and fine-tune of an estimate, from the SearchOptions the benchmark ran."""
    source = (f"supernet {options['supernet_steps']} steps" if int(options.get("supernet_steps", 0))
              else f"teacher {options['teacher_steps']} steps")
    return f"{source}, {options['finetune_steps']} KD steps"


def _estimate_seeds(results: list[dict]) -> list[str]:
    lines = [
        "## How steady is the accuracy estimate? (`benchmarks.estimate.seeds`)",
        "",
        "The search's own estimate of 20 candidates spread over the space's MAC range, repeated for 5 training "
        "seeds (teacher or supernet, and fine-tuning; same data and validation images). Per-candidate spread: "
        "standard deviation of one candidate's estimate over the seeds, in accuracy points (mean and worst over "
        "the candidates). Between candidates: standard deviation of their mean estimates. Seed-to-seed tau: "
        "Kendall tau between two seeds' estimates of the 20 (mean and worst over the seed pairs). "
        "Goal (issue 30): spread <= 2 points and tau >= 0.8 at <= 3 s per candidate.",
        "",
        "| dataset | recipe | seeds | per-candidate spread (pts) | worst | between candidates (pts) | seed tau "
        "| worst tau | s / candidate | machine | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["dataset"], r["date"])):
        s = r["summary"]
        lines.append(
            f"| {r['dataset']} ({r['train_images']} train / {r['val_images']} val) | {r.get('label') or '-'}: {_recipe(r['options'])} | "
            f"{s.get('seeds', len(r['estimates']))}{'' if r.get('complete', True) else ' (cut short)'} | "
            f"{s['per_candidate_stdev_points_mean']:.2f} | {s['per_candidate_stdev_points_max']:.2f} | "
            f"{s['between_candidate_stdev_points']:.2f} | {s['seed_tau_mean']:.3f} | {s['seed_tau_min']:.3f} | "
            f"{s['seconds_per_candidate']:.2f} | {r['machine']['cpu']}, {r['machine']['cores']} cores | "
            f"{r['date'][:10]} |")
    lines += ["", "Commands:", ""]
    lines += [f"- {r.get('label') or r['dataset']}: `{r['command']}`" for r in sorted(results, key=lambda r: r["date"])]
    return lines


def _bad_input_sweep(results: list[dict]) -> list[str]:
    latest = max(results, key=lambda r: r["date"])
    counts = latest["counts"]
    return [
        "## Does bad input get a one-line error and leave stored data alone? (`benchmarks.robustness.bad_input_sweep`)",
        "",
        "Bad inputs and faults across every command, each on a fresh copy of a small real run. Goal (issue 29): "
        "0 tracebacks, 0 silently accepted, 0 stored data changed.",
        "",
        "| " + " | ".join(counts) + " | machine | date |",
        "|" + "---|" * (len(counts) + 2),
        "| " + " | ".join(str(v) for v in counts.values())
        + f" | {latest['machine']['cpu']}, {latest['machine']['cores']} cores | {latest['date'][:10]} |",
        "",
        "Command: `python -m benchmarks.robustness.bad_input_sweep --out benchmarks/results/bad_input_sweep.json`",
    ]


RENDERERS = {"estimate_seeds": _estimate_seeds, "bad_input_sweep": _bad_input_sweep}


def main() -> int:
    by_benchmark: dict[str, list[dict]] = {}
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        by_benchmark.setdefault(result.get("benchmark", path.stem.split("-")[0]), []).append(result)
    lines = ["# autoc results", "",
             "Current figures, rendered from `benchmarks/results/*.json` by `python -m benchmarks.render`; "
             "each row names the machine and date it was measured on and the command that measures it again.", ""]
    for name, render in RENDERERS.items():
        if name in by_benchmark:
            lines += render(by_benchmark[name]) + [""]
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text("\n".join(lines))
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
