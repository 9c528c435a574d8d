"""What a stored study holds, from the storage alone: trials by state, front, best, policy file.

Shared by `autoc show` (as text) and `autoc report` (as a page); needs no dataset, no
latency profile and no training.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from optuna.trial import TrialState

from autoc.run_paths import budget_suffix
from autoc.search.results import (BudgetChoice, TrialRecord, accuracy_text, budget_choices, budget_table_lines,
                                  pareto_front)
from autoc.search.separation import separation_text
from autoc.search.stored import StoredRun

POLICY_FILENAME = "best_policy.json"
STATE_ORDER = ("COMPLETE", "RUNNING", "WAITING", "PRUNED", "FAIL")


@dataclass(frozen=True)
class StudySummary:
    """What `autoc show` and the report say about a stored study."""

    name: str
    run_dir: Path
    space: str
    device: str
    budget_ms: float
    states: Mapping[str, int]  # every TrialState name -> count
    records: tuple[TrialRecord, ...]  # completed trials, in trial order
    pareto: tuple[TrialRecord, ...]
    best: TrialRecord | None
    finished_s: Mapping[int, float]  # trial number -> seconds from the study's first start to its end
    policy_path: Path | None  # best_policy.json beside the study, when written
    policy_trial: int | None  # the trial that file holds (None when unreadable)
    separation: str | None  # which trials the estimate does not separate from the best (autoc.search.separation)
    # A sweep's choice per budget, smallest first (policy_path: its best_policy-<budget>ms.json when
    # written); empty for a search with one budget
    budgets: tuple[BudgetChoice, ...] = ()

    @property
    def feasible(self) -> int:
        return sum(r.feasible for r in self.records)


def summarize(run: StoredRun) -> StudySummary:
    """Summarise a stored run: trial states, completed trials, Pareto front, the chosen trial."""
    trials = run.study.get_trials(deepcopy=False)
    states = {name: 0 for name in STATE_ORDER}
    for trial in trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    records = sorted(run.records(), key=lambda r: r.number)
    policy_path = run.run_dir / POLICY_FILENAME
    best = run.chosen(records)
    return StudySummary(
        name=run.name,
        run_dir=run.run_dir,
        space=run.space_name,
        device=run.device,
        budget_ms=run.budget_ms,
        states=states,
        records=tuple(records),
        pareto=tuple(pareto_front(records)),
        best=best,
        finished_s=_finished_seconds(trials),
        policy_path=policy_path if policy_path.is_file() else None,
        policy_trial=_policy_trial(policy_path),
        separation=separation_text(best, records, run_dir=run.run_dir) if best else None,
        budgets=_budget_choices(run, records, best),
    )


def _budget_choices(run: StoredRun, records: list[TrialRecord], best: TrialRecord | None) -> tuple[BudgetChoice, ...]:
    if len(run.budgets_ms) < 2:
        return ()
    choices = []
    for choice in budget_choices(records, run.budgets_ms, chosen=best):
        path = run.run_dir / f"best_policy{budget_suffix(choice.budget_ms, several=True)}.json"
        choices.append(BudgetChoice(choice.budget_ms, choice.best, choice.feasible,
                                    path if path.is_file() else None))
    return tuple(choices)


def _finished_seconds(trials) -> dict[int, float]:
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not starts:
        return {}
    first = min(starts)
    return {
        t.number: (t.datetime_complete - first).total_seconds()
        for t in trials
        if t.state == TrialState.COMPLETE and t.datetime_complete is not None
    }


def _policy_trial(path: Path) -> int | None:
    try:
        trial = json.loads(path.read_text(encoding="utf-8")).get("trial")
    except (OSError, ValueError, AttributeError):
        return None
    return trial if isinstance(trial, int) else None


def format_summary(summary: StudySummary) -> str:
    """The text `autoc show` prints."""
    budget = f"{summary.budget_ms:g} ms"
    complete = summary.states.get("COMPLETE", 0)
    lines = [
        f"study {summary.name}: space {summary.space}, device {summary.device}, budget {budget}",
        "trials: " + ", ".join(f"{count} {state.lower()}" for state, count in summary.states.items()),
        f"feasible (trained within {budget}): {summary.feasible} of {complete} complete",
    ]
    if summary.pareto:
        lines.append("Pareto front (accuracy, predicted latency, size):")
        lines += format_records(summary.pareto)
    best = summary.best
    if best is None:
        lines.append(f"best under {budget}: none yet; run more trials or raise the budget")
    else:
        lines.append(
            f"best under {budget}: trial {best.number}, {accuracy_text(best)}, "
            f"{best.latency_ms:.3f} ms predicted, {best.size_bytes / 1024:.1f} kB"
        )
        if summary.separation:
            lines.append(summary.separation)
    if summary.budgets:
        lines += budget_table_lines(list(summary.budgets))
    lines.append(_policy_line(summary))
    return "\n".join(lines)


def format_records(records) -> list[str]:
    """A text table of ``records`` with the compression each applies (int8 share, mean keep ratio)."""
    header = ("trial", "accuracy", "latency_ms", "size_kB", "MMACs", "int8", "keep")
    rows = [header]
    for r in records:
        int8_share, mean_keep = policy_digest(r.candidate)
        rows.append((
            str(r.number), f"{r.accuracy:.4f}", f"{r.latency_ms:.3f}", f"{r.size_bytes / 1024:.1f}",
            f"{r.macs / 1e6:.2f}", f"{int8_share:.0%}", f"{mean_keep:.2f}",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]


def policy_digest(candidate: Mapping) -> tuple[float, float]:
    """(share of layers run int8, mean keep ratio) of a stored candidate's policy."""
    layers = list(candidate.get("policy", {}).values())
    if not layers:
        return 0.0, 1.0
    int8 = sum(layer.get("precision") == "int8" for layer in layers)
    return int8 / len(layers), sum(float(layer.get("keep_ratio", 1.0)) for layer in layers) / len(layers)


def _policy_line(summary: StudySummary) -> str:
    if summary.policy_path is None:
        return f"best_policy.json: not written in {summary.run_dir} (autoc search writes it when a trial fits the budget)"
    line = f"best_policy.json: {summary.policy_path}"
    if summary.policy_trial is None:
        return line + " (unreadable; re-run autoc search on this study to rewrite it)"
    line += f" (trial {summary.policy_trial})"
    if summary.best is not None and summary.best.number != summary.policy_trial:
        line += f"; the study's best is now trial {summary.best.number}: resume autoc search on it to rewrite the file"
    return line
