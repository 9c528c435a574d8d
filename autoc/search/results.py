"""Read a study back as plain records; the Pareto front of feasible trials."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from autoc.run_paths import resolve_stored

CORRECT_ATTR = "val_correct"  # a trial's per-image estimate results, read by autoc.search.separation
# Study attribute: the top trials estimated again with another training seed (autoc.search.seed_noise):
# {"training_seed": int, "accuracy": {"<trial number>": float}}.
RERUN_ATTR = "estimate_rerun"


@dataclass(frozen=True)
class TrialRecord:
    """A completed trial as stored: accuracy, latency, size, candidate and weights."""

    number: int
    accuracy: float
    latency_ms: float
    size_bytes: int
    params: int
    macs: int
    feasible: bool
    candidate: dict[str, Any]
    weights: str | None
    # Set when ``accuracy`` is a finalist's trained accuracy: the trial's own short estimate.
    estimate: float | None = None
    # The estimate's per-image results as stored (autoc.search.separation), when the trial has them.
    correct: str | None = field(default=None, repr=False, compare=False)
    # The same estimate with another training seed (teacher or supernet and fine-tuning), when it was rerun.
    rerun: float | None = None


def accuracy_text(record: TrialRecord) -> str:
    """``accuracy 0.4730``, or for a finalist ``accuracy 0.4730 (finalist; estimate 0.3550)``."""
    text = f"accuracy {record.accuracy:.4f}"
    return text if record.estimate is None else f"{text} (finalist; estimate {record.estimate:.4f})"


def completed_records(study: optuna.Study, *, budget_ms: float, run_dir: Path | None = None) -> list[TrialRecord]:
    """The study's completed trials as records (feasible: within ``budget_ms`` as well as stored so);
    with ``run_dir``, weights are the paths of the stored ones in that run directory as it is now."""
    reruns = rerun_estimates(study.user_attrs)
    records = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        if "candidate" not in attrs:
            continue
        latency = float(attrs["latency_ms"])
        records.append(
            TrialRecord(
                number=trial.number,
                accuracy=float(trial.values[0]),
                latency_ms=latency,
                size_bytes=int(attrs["size_bytes"]),
                params=int(attrs.get("params", 0)),
                macs=int(attrs.get("macs", 0)),
                feasible=bool(attrs.get("feasible", False)) and latency <= budget_ms,
                candidate=attrs["candidate"],
                weights=_weights(attrs.get("weights"), run_dir=run_dir),
                correct=attrs.get(CORRECT_ATTR),
                rerun=reruns.get(trial.number),
            )
        )
    return records


def _weights(stored: str | None, *, run_dir: Path | None) -> str | None:
    if not stored or run_dir is None:
        return stored
    return str(resolve_stored(stored, run_dir=run_dir))


def rerun_estimates(study_attrs: dict[str, Any]) -> dict[int, float]:
    """Trial number -> its estimate under the other training seed, as stored (empty when none or unreadable)."""
    stored = study_attrs.get(RERUN_ATTR)
    try:
        return {int(number): float(accuracy) for number, accuracy in stored["accuracy"].items()}
    except (TypeError, KeyError, ValueError, AttributeError):
        return {}


def pareto_front(records: list[TrialRecord]) -> list[TrialRecord]:
    """Feasible records no other feasible record beats on accuracy, latency and size at once."""
    feasible = [r for r in records if r.feasible]

    def dominates(a: TrialRecord, b: TrialRecord) -> bool:
        no_worse = a.accuracy >= b.accuracy and a.latency_ms <= b.latency_ms and a.size_bytes <= b.size_bytes
        better = a.accuracy > b.accuracy or a.latency_ms < b.latency_ms or a.size_bytes < b.size_bytes
        return no_worse and better

    front = [r for r in feasible if not any(dominates(o, r) for o in feasible)]
    return sorted(front, key=lambda r: (-r.accuracy, r.latency_ms))


def best_record(records: list[TrialRecord]) -> TrialRecord | None:
    """Most accurate feasible record; ties go to the faster, then the smaller."""
    feasible = [r for r in records if r.feasible]
    if not feasible:
        return None
    return min(feasible, key=lambda r: (-r.accuracy, r.latency_ms, r.size_bytes))


@dataclass(frozen=True)
class BudgetChoice:
    """One budget of a search: the trial chosen within it (None: no trained trial fits it), how
    many trained trials fit it, and the policy file written for it."""

    budget_ms: float
    best: TrialRecord | None
    feasible: int
    policy_path: Path | None = None


def within_budget(records: list[TrialRecord], budget_ms: float) -> list[TrialRecord]:
    """``records`` with feasible narrowed to those also within ``budget_ms`` (a smaller budget of a sweep)."""
    return [replace(r, feasible=r.feasible and r.latency_ms <= budget_ms) for r in records]


def budget_choices(records: list[TrialRecord], budgets_ms: tuple[float, ...], *,
                   chosen: TrialRecord | None) -> list[BudgetChoice]:
    """The choice per budget, smallest first, from ``records`` of the largest budget: the largest
    gets ``chosen`` (its choice by the full rule, a finalist included), every other budget the most
    accurate estimate within it (``best_record``)."""
    largest = max(budgets_ms)
    choices = []
    for budget in sorted(budgets_ms):
        within = within_budget(records, budget)
        best = chosen if budget == largest else best_record(within)
        choices.append(BudgetChoice(budget_ms=budget, best=best, feasible=sum(r.feasible for r in within)))
    return choices


def budget_table_lines(choices: list[BudgetChoice]) -> list[str]:
    """A sweep's choices as a table, one row per budget (``none fits`` where no trained trial does)."""
    lines = ["per budget (chosen within each; accuracy estimate, predicted latency, size):",
             f"  {'budget_ms':>9}  {'trial':>5}  {'accuracy':>8}  {'latency_ms':>10}  {'size_kB':>8}  policy"]
    for choice in choices:
        best = choice.best
        if best is None:
            lines.append(f"  {choice.budget_ms:>9g}  none fits ({choice.feasible} trained trials within it); run more "
                         "trials or raise this budget")
            continue
        policy = choice.policy_path.name if choice.policy_path is not None else "-"
        finalist = " (finalist)" if best.estimate is not None else ""
        lines.append(f"  {choice.budget_ms:>9g}  {best.number:>5}  {best.accuracy:>8.4f}  {best.latency_ms:>10.3f}  "
                     f"{best.size_bytes / 1024:>8.1f}  {policy}{finalist}")
    return lines
