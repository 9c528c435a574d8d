"""Live progress of a search: trials done, feasible ones, best accuracy under budget, ETA.

The bar is a view of the storage, not a tally of this process: it starts from what a resumed
study already holds and counts trials finished by every worker, local or remote.
"""
from __future__ import annotations

import sys

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from autoc.search.results import best_record, completed_records

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class SearchProgress:
    """A progress bar of the study's finished trials, feasible ones and best accuracy under budget."""

    def __init__(self, study: optuna.Study, *, total: int | None, budget_ms: float, enabled: bool) -> None:
        self.study = study
        self.budget_ms = budget_ms
        self.done = self.feasible = 0
        self.best: float | None = None
        self._read()
        self.start_done = self.done
        self.bar = tqdm(
            total=total, initial=self.done, desc="trials", unit="trial", file=sys.stderr, disable=not enabled,
            dynamic_ncols=True,
        )
        self._refresh()

    def sync(self) -> int:
        """Re-read the storage; returns the finished trial count."""
        before = self.done
        self._read()
        if self.done > before:
            self.bar.update(self.done - before)
        self._refresh()
        return self.done

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """As an Optuna callback of the in-process worker."""
        self.sync()

    def _read(self) -> None:
        self.done = len(self.study.get_trials(deepcopy=False, states=FINISHED))
        records = completed_records(self.study, budget_ms=self.budget_ms)
        best = best_record(records)
        self.feasible = sum(r.feasible for r in records)
        self.best = best.accuracy if best else None

    def _refresh(self) -> None:
        best = "-" if self.best is None else f"{self.best:.4f}"
        self.bar.set_postfix_str(f"feasible={self.feasible} best_acc={best}")

    def close(self) -> None:
        self.bar.close()
