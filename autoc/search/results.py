"""Read a study back as plain records; the Pareto front of feasible trials."""
from __future__ import annotations

from dataclasses import dataclass, field
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
