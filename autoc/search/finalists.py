"""The finalist stage: the search's best estimates, trained from scratch, chosen by that accuracy.

A few-second estimate ranks candidates only roughly (README, ranking fidelity), so a
search can end by training its ``count`` feasible candidates with the highest estimates
by a longer recipe (the same one for all: random init, the policy's pruned shape,
sparsity and quantisation-aware training, ``TrainConfig``), scoring each on the
validation split, and choosing the most accurate finalist instead of the highest estimate.

Each result is stored in the study (a study user attribute per trial and recipe,
``finalist:<trial>:<recipe key>``) as soon as it exists, and its weights under ``<run>/finalists/``: a crash or a
stop loses only the finalist in training, and a resumed search trains only the missing
ones. The study's trials stay as they were (Optuna freezes finished trials).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import optuna
import torch

from autoc.candidate import Candidate
from autoc.data.datasets import DatasetSplit, resized
from autoc.evaluate.recipe import train_from_scratch
from autoc.run_paths import resolve_stored, stored_path
from autoc.training.loop import TrainConfig
from autoc.search.objective import save_weights
from autoc.search.options import AUTO
from autoc.search.results import TrialRecord
from autoc.search.separation import AUTO_FINALISTS, record_separations, tied

logger = logging.getLogger(__name__)

ATTR_PREFIX = "finalist:"


@dataclass(frozen=True)
class FinalistResult:
    """A finalist trained from scratch: its accuracy, time, weights and recipe."""

    trial: int
    accuracy: float  # on the validation split, after the finalist recipe
    seconds: float
    weights: str
    recipe: str  # recipe_key of the TrainConfig that produced it


def recipe_key(config: TrainConfig) -> str:
    """A short name of the recipe: results of another recipe are not this one's."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()[:12]


def attr_name(trial: int, config: TrainConfig) -> str:
    """The study attribute holding trial ``trial``'s result under recipe ``config``."""
    return f"{ATTR_PREFIX}{trial}:{recipe_key(config)}"


def pick_finalists(records: list[TrialRecord], *, count: int) -> list[TrialRecord]:
    """The ``count`` feasible records with the highest estimates (ties: faster, then smaller)."""
    feasible = sorted((r for r in records if r.feasible), key=lambda r: (-r.accuracy, r.latency_ms, r.size_bytes))
    return feasible[:count]


def tied_finalists(records: list[TrialRecord], *, cap: int = AUTO_FINALISTS) -> list[TrialRecord]:
    """``finalists.count="auto"``: the top estimate and the feasible trials it does not separate from by the
    validation images' and, where measured, the training seeds' noise (autoc.search.separation), closest
    first, at most ``cap`` in all. Just the top estimate when it leads every other beyond that noise, or
    when no per-image results are stored."""
    top = pick_finalists(records, count=1)
    if not top:
        return []
    by_number = {r.number: r for r in records}
    ties = tied(record_separations(top[0].number, records)[0])
    return top + [by_number[s.trial] for s in ties][: cap - 1]


def finalist_picks(records: list[TrialRecord], finalists: int | str) -> list[TrialRecord]:
    """The finalists ``FinalistOptions.count`` names: a count of top estimates, or ``auto`` (``tied_finalists``)."""
    return tied_finalists(records) if finalists == AUTO else pick_finalists(records, count=int(finalists))


def stored_finalists(study: optuna.Study, *, config: TrainConfig, run_dir: Path) -> dict[int, FinalistResult]:
    """Finalist results of this recipe stored in ``study``, by trial number, their weights found in
    ``run_dir`` as it is now. An entry that does not read as one (written by hand, or by another
    version), or whose weights are gone, is left out: that finalist is trained again."""
    key = recipe_key(config)
    results = {}
    for name, value in study.user_attrs.items():
        if name.startswith(ATTR_PREFIX) and isinstance(value, Mapping) and value.get("recipe") == key:
            try:
                result = FinalistResult(trial=int(value["trial"]), accuracy=float(value["accuracy"]),
                                        seconds=float(value["seconds"]), recipe=key,
                                        weights=str(resolve_stored(str(value["weights"]), run_dir=run_dir)))
            except (KeyError, TypeError, ValueError):
                continue
            if Path(result.weights).is_file():
                results[result.trial] = result
    return results


def train_finalists(
    study: optuna.Study,
    finalists: list[TrialRecord],
    data: DatasetSplit,
    *,
    config: TrainConfig,
    weights_dir: Path,  # <run directory>/finalists
    log: Callable[[str], None] = logger.info,
    device: torch.device | None = None,
) -> dict[int, FinalistResult]:
    """Train every finalist the study has no result for (this recipe), store each result at once;
    return the results of all ``finalists``."""
    run_dir = weights_dir.parent
    done = stored_finalists(study, config=config, run_dir=run_dir)
    todo = [r for r in finalists if r.number not in done]
    if done and todo:
        log(f"finalists: {len(finalists) - len(todo)} of {len(finalists)} already trained (stored in the study)")
    spent = 0.0
    for i, record in enumerate(todo):
        eta = f", about {spent / i * (len(todo) - i) / 60:.0f} min left" if i else ""
        log(f"finalist {i + 1}/{len(todo)}: trial {record.number} (estimate {record.accuracy:.4f}, "
            f"{record.latency_ms:.3f} ms), {config.steps} steps from scratch{eta}")
        candidate = Candidate.from_dict(record.candidate)
        trained = train_from_scratch(candidate, resized(data, candidate.arch.input_size), config=config, device=device)
        spent += trained.seconds
        weights = save_weights(trained.model, weights_dir / f"trial-{record.number}-{recipe_key(config)}.pt")
        result = FinalistResult(trial=record.number, accuracy=trained.accuracy, seconds=round(trained.seconds, 1),
                                weights=str(weights), recipe=recipe_key(config))
        # stored relative to the run directory, so that a copied or moved run finds its own weights
        study.set_user_attr(attr_name(record.number, config),
                            {**dataclasses.asdict(result), "weights": stored_path(weights, run_dir=run_dir)})
        done[record.number] = result
        log(f"  trial {record.number}: accuracy {trained.accuracy:.4f} after {trained.seconds:.0f} s")
    return {r.number: done[r.number] for r in finalists}


def chosen_finalist(records: list[TrialRecord], results: Mapping[int, FinalistResult]) -> TrialRecord | None:
    """The finalist with the highest trained accuracy (ties: faster), as a record carrying that
    accuracy and the finalist's weights; None without results."""
    scored = [r for r in records if r.number in results]
    if not scored:
        return None
    best = min(scored, key=lambda r: (-results[r.number].accuracy, r.latency_ms, r.size_bytes))
    result = results[best.number]
    return dataclasses.replace(best, accuracy=result.accuracy, weights=result.weights, estimate=best.accuracy)
