"""`autoc search --resume runs/<study>`: repeat the stored command, with any option given overriding."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from optuna.samplers import BaseSampler
from optuna.trial import TrialState

from autoc.errors import OptionError, StorageError
from autoc.search.options import SAMPLERS, SearchOptions, stored_to_dict
from autoc.search.stored import open_stored_run


def resume_options(run_dir: str | Path, *, given: Mapping[str, Any], storage: str | None = None,
                   study: str | None = None) -> SearchOptions:
    """Options of the study stored in ``run_dir`` (its study.db, or ``storage``), then ``given``
    on top: options as ``SearchOptions.from_dict`` reads them (groups nested, only the fields to
    change in a group), e.g. the flags the user passed. Identity checks happen later, as for any
    search. The study is the one in the run directory whatever the directory is called (``study``
    picks one where its storage holds several)."""
    run_dir = Path(run_dir)
    stored = open_stored_run(run_dir, storage=storage, study=study)
    recorded = stored.run_options
    if not recorded:
        raise StorageError(
            f"study {stored.name!r} in {run_dir} predates resuming (no stored options); "
            f"repeat the original search with storage.study {stored.name} instead", fields=("storage.study",)
        )
    values = stored_to_dict(recorded)
    if "space" in values:
        values["space"] = stored.space_option  # a space file as it is now: the run directory's copy
    if "budget_mj" in stored.identity:
        values["budget_mj"] = float(stored.identity["budget_mj"])
    values["budget_ms"] = stored.budget_ms
    values["storage"] = {"study": stored.name, "url": storage, "runs_dir": run_dir.resolve().parent}
    if run_dir.name != stored.name:
        values["storage"]["run_dir"] = run_dir.resolve()  # renamed: weights and the chosen policy stay in this directory
    merged = merge_options(values, given)
    _check_sampler(stored.name, merged.get("sampler"))
    _check_trials_target(stored, given.get("trials"))
    return SearchOptions.from_dict(merged)


def merge_options(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top``'s values over it; a group in both (a mapping) is merged field by field.
    A supernet recipe over no supernet must give its steps: the recipe alone would not say that
    (or how long) a supernet is to be trained."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_options(merged[key], value)
        elif key == "supernet" and isinstance(value, Mapping) and "steps" not in value:
            field = f"supernet.{next(iter(value), 'steps')}"
            raise OptionError(f"{field} changes the supernet recipe, but no supernet is trained: set supernet.steps "
                              "too (e.g. 150)", fields=(field, "supernet.steps"))
        else:
            merged[key] = value
    return merged


def _check_sampler(name: str, sampler: object) -> None:
    """A sampler object is stored by its class name, which cannot make it again."""
    if isinstance(sampler, BaseSampler) or sampler is None or sampler in SAMPLERS:
        return
    raise OptionError(
        f"study {name!r} was run with an object of class {sampler} as sampler, which its stored options cannot "
        f"make again: set sampler to such an object again (an optuna.samplers.BaseSampler) or to one of "
        f"{', '.join(SAMPLERS)}", fields=("sampler",))


def _check_trials_target(stored, trials: int | None) -> None:
    """trials is the study's total: one below the trials already run would run nothing and
    silently lower the stored target."""
    done = len(stored.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    if trials is not None and trials < done:
        raise OptionError(
            f"study {stored.name!r} has already run {done}, more than trials {trials}: trials is the study's "
            f"total across resumes; set trials to {done + 10} to run 10 more, or leave it out",
            fields=("trials",)
        )
