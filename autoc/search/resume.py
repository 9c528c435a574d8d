"""`autoc search --resume runs/<study>`: repeat the stored command, with any flag given overriding."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

from optuna.trial import TrialState

from autoc.errors import StorageError
from autoc.search.options import FINALIST_FIELDS, SUPERNET_RECIPE_FIELDS, SearchOptions
from autoc.search.stored import open_stored_run

# Stored run options that map one to one onto SearchOptions fields.
_STORED = ("space", "dataset", "data_dir", "seed", "max_train", "max_val", "trials", "sampler",
           "finetune_steps", "teacher_steps", "supernet_steps", "batch_size", "device",
           *SUPERNET_RECIPE_FIELDS, *FINALIST_FIELDS)


def resume_options(run_dir: str | Path, *, storage: str | None, given: Mapping[str, Any],
                   study: str | None = None) -> SearchOptions:
    """Options of the study stored in ``run_dir`` (its study.db, or ``storage``), then ``given``
    (the flags the user passed) on top. Identity checks happen later, as for any search.
    The study is the one in the run directory whatever the directory is called (``study``
    picks one where its storage holds several)."""
    run_dir = Path(run_dir)
    stored = open_stored_run(run_dir, storage=storage, study=study)
    recorded = stored.run_options
    if not recorded:
        raise StorageError(
            f"study {stored.name!r} in {run_dir} predates --resume (no stored options); "
            f"repeat the original command with --study {stored.name} instead"
        )
    values: dict[str, Any] = {key: recorded[key] for key in _STORED if key in recorded}
    if "budget_mj" in stored.identity:
        values["budget_mj"] = float(stored.identity["budget_mj"])
    values.update(budget_ms=stored.budget_ms, study=stored.name, storage=storage, runs_dir=run_dir.resolve().parent)
    if run_dir.name != stored.name:
        values["run_dir"] = run_dir.resolve()  # renamed: weights and the chosen policy stay in this directory
    known = {f.name for f in fields(SearchOptions)}
    values.update({key: value for key, value in given.items() if key in known and value is not None})
    _check_trials_target(stored, given.get("trials"))
    return SearchOptions(**values)


def _check_trials_target(stored, trials: int | None) -> None:
    """--trials is the study's total: one below the trials already run would run nothing and
    silently lower the stored target."""
    done = len(stored.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    if trials is not None and trials < done:
        raise StorageError(
            f"study {stored.name!r} has already run {done} trials, more than --trials {trials}; --trials is the "
            f"study's total across resumes: give --trials {done + 10} to run 10 more, or leave it out"
        )
