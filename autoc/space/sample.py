"""Sampling candidates through Optuna trials, and rebuilding them from a trial's stored params."""
from __future__ import annotations

from typing import Any, Mapping

import optuna
from optuna.trial import BaseTrial

from autoc.candidate import Candidate
from autoc.errors import SpaceError
from autoc.space.assemble import assemble
from autoc.space.model import SearchSpace
from autoc.space.params import parameter_plan


def random_sampling_study(*, seed: int) -> optuna.Study:
    """An in-memory study with a seeded random sampler, to draw candidates from (``study.ask()``).
    Optuna announces every new study at INFO ("A new study created in memory ..."): news to nobody
    here, so it is silenced while this one is created."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
    try:
        return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    finally:
        optuna.logging.set_verbosity(verbosity)


def sample_candidate(space: SearchSpace, trial: BaseTrial, *, num_classes: int | None = None) -> Candidate:
    """Suggest every searched parameter of the space's static plan (categorical only) and build the candidate."""
    values = {
        p.name: trial.suggest_categorical(p.name, p.choices) if p.searched else p.choices[0]
        for p in parameter_plan(space)
    }
    return assemble(space, values, num_classes=num_classes)


def candidate_from_params(
    space: SearchSpace, params: Mapping[str, Any], *, num_classes: int | None = None
) -> Candidate:
    """The candidate ``sample_candidate`` built for a trial with these ``params`` (for resume and export).

    Extra keys are ignored: a study may suggest parameters of its own beside the space's.
    """
    values: dict[str, Any] = {}
    for p in parameter_plan(space):
        if not p.searched:
            values[p.name] = p.choices[0]
            continue
        if p.name not in params:
            raise SpaceError(
                f"{space.source}: trial params lack {p.name!r} (choices {list(p.choices)}); "
                "the trial was sampled from a different search space"
            )
        value = params[p.name]
        if value not in p.choices or isinstance(value, bool):
            raise SpaceError(
                f"{space.source}: trial param {p.name} = {value!r} is not one of {list(p.choices)}; "
                "the trial was sampled from a different search space"
            )
        values[p.name] = value
    return assemble(space, values, num_classes=num_classes)
