"""The progress bar is a view of the storage: a resumed study starts from what it holds, and
trials finished by other workers move it."""
import optuna
from optuna.trial import TrialState, create_trial

from autoc.search.progress import SearchProgress


def _trial(accuracy: float, latency_ms: float, *, state=TrialState.COMPLETE):
    attrs = {"candidate": {}, "latency_ms": latency_ms, "size_bytes": 1000, "feasible": True}
    values = [accuracy, latency_ms, 1000.0] if state == TrialState.COMPLETE else None
    return create_trial(state=state, values=values, user_attrs=attrs)


def test_progress_starts_from_the_stored_state_and_follows_other_workers():
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for trial in (_trial(0.6, 1.0), _trial(0.9, 30.0), _trial(0.7, 2.0), _trial(0.0, 1.0, state=TrialState.FAIL)):
        study.add_trial(trial)
    progress = SearchProgress(study, total=6, budget_ms=20.0, enabled=True)
    assert (progress.done, progress.feasible, progress.best) == (3, 2, 0.7)  # 0.9 is over budget
    assert progress.bar.n == 3 and progress.bar.total == 6

    study.add_trial(_trial(0.8, 3.0))  # as another worker would
    assert progress.sync() == 4
    assert (progress.bar.n, progress.feasible, progress.best) == (4, 3, 0.8)
    progress.close()
