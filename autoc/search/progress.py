"""Live progress of a search: trials done, feasible ones, best accuracy under budget, ETA."""
from __future__ import annotations

import sys

import optuna
from tqdm import tqdm


class SearchProgress:
    """An Optuna callback that drives a tqdm bar; starts from what the storage already holds."""

    def __init__(self, *, total: int | None, done: int, feasible: int, best: float | None, enabled: bool) -> None:
        self.feasible = feasible
        self.best = best
        self.bar = tqdm(
            total=total, initial=done, desc="trials", unit="trial", file=sys.stderr, disable=not enabled, dynamic_ncols=True
        )
        self._refresh()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get("feasible"):
            self.feasible += 1
            accuracy = trial.values[0] if trial.values else None
            if accuracy is not None and (self.best is None or accuracy > self.best):
                self.best = accuracy
        self.bar.update(1)
        self._refresh()

    def _refresh(self) -> None:
        best = "-" if self.best is None else f"{self.best:.4f}"
        self.bar.set_postfix_str(f"feasible={self.feasible} best_acc={best}")

    def close(self) -> None:
        self.bar.close()
