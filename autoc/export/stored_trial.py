"""One trained trial of a stored study, as a policy file plus its weights."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoc.arch.builder import AutocNet
from autoc.candidate import Candidate
from autoc.errors import PolicyError, SpaceError
from autoc.policy.file import PolicyFile, load_weights, record_metrics, space_reference
from autoc.search.results import TrialRecord
from autoc.search.stored import StoredRun
from autoc.space import SearchSpace, load_space


@dataclass(frozen=True)
class StoredTrial:
    """A trial of a stored run, ready to export: its record, the run's space and its policy."""

    run: StoredRun
    record: TrialRecord
    space: SearchSpace
    policy: PolicyFile  # weights=None: the weights live at record.weights

    @property
    def weights_path(self) -> Path:
        return Path(self.record.weights)

    def build_model(self) -> AutocNet:
        """The trial's compressed model with its fine-tuned weights, in eval mode."""
        return self.policy.build_model(weights=self.weights_path)


def open_trial(run: StoredRun, *, trial: int | None) -> StoredTrial:
    """The trial numbered ``trial``, or the best feasible one; it must have been trained."""
    records = run.records()
    record = _choose(records, trial=trial, run=run)
    if not record.weights:
        raise PolicyError(
            f"trial {record.number} of study {run.name!r} was never trained (predicted {record.latency_ms:.3f} ms, "
            f"over the {run.budget_ms:g} ms budget), so it has no weights; pick one of the trained trials "
            f"{_trained(records)}"
        )
    if not Path(record.weights).is_file():
        raise PolicyError(
            f"weights of trial {record.number} ({record.weights}) are missing from run directory {run.run_dir}: "
            "restore them from a backup of the run directory, or export another --trial"
        )
    space = run_space(run)
    candidate = Candidate.from_dict(record.candidate)
    policy = PolicyFile(
        candidate=candidate,
        space=space_reference(space),
        metrics=record_metrics(record),
        device=run.device,
        study=run.name,
        trial=record.number,
        preprocessing=None if run.preprocessing is None else run.preprocessing.at_size(candidate.arch.input_size),
    )
    stored = StoredTrial(run=run, record=record, space=space, policy=policy)
    load_weights(stored.policy.build_model(weights=None), stored.weights_path)  # fails early if they do not fit
    return stored


def _choose(records: list[TrialRecord], *, trial: int | None, run: StoredRun) -> TrialRecord:
    if trial is None:
        best = run.chosen(records)
        if best is None:
            raise PolicyError(
                f"study {run.name!r} has no trained trial within its {run.budget_ms:g} ms budget; "
                "run more trials (autoc search --study NAME), or name one with --trial"
            )
        return best
    chosen = next((r for r in records if r.number == trial), None)
    if chosen is None:
        raise PolicyError(
            f"study {run.name!r} has no completed trial {trial}; its trained trials are {_trained(records)}"
        )
    return chosen


def _trained(records: list[TrialRecord]) -> list[int]:
    return [r.number for r in records if r.weights]


def run_space(run: StoredRun) -> SearchSpace:
    """The search space of the study, checked against the fingerprint stored at its creation."""
    given = run.space_option
    try:
        space = load_space(given)
    except SpaceError as exc:
        raise SpaceError(f"study {run.name!r} was searched in space {given!r}, which cannot be loaded: {exc}") from None
    stored = run.identity["space"].split(":", 1)[1] if ":" in run.identity["space"] else None
    if stored is not None and space.fingerprint() != stored:
        raise SpaceError(
            f"search space {given!r} ({space.source}) has changed since study {run.name!r} was created "
            f"(fingerprint {space.fingerprint()[:12]}..., the study has {stored[:12]}...); "
            "restore the space file the search used"
        )
    return space
