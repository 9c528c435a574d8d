"""A finished `autoc compress` study opened read-only: its trials, its chosen policy per budget,
and a chosen trial's compressed model rebuilt from the files in the run directory.

`autoc export` and `autoc report` start here for compress studies (`autoc.search.stored` is
their start for search studies)::

    study = open_compress_study(Path("runs/my-resnet"))
    chosen = study.choose(budget_ms=None, trial=None)  # the largest budget's chosen trial
    model = study.build_model(chosen)                  # pruned, fake-quantised, fine-tuned weights
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch

from autoc.data.datasets import DatasetSplit, load_dataset
from autoc.errors import PolicyError, StorageError
from autoc.modelspace.driver import (ACCURACY_ATTR, LATENCY_ATTR, OPTIONS_ATTR, SIZE_ATTR, Chosen,
                                     CompressOptions, CompressResult, _stored, stored_result)
from autoc.modelspace.policy_file import ModelPolicyFile, load_model_policy
from autoc.modelspace.reference import load_model
from autoc.search.storage import default_storage_url, open_storage


@dataclass(frozen=True)
class CompressTrial:
    """One completed trial of a compress study: its predicted latency and, when fine-tuned, accuracy."""

    number: int
    predicted_ms: float
    accuracy: float | None  # None: over every budget, never fine-tuned
    size_kb: float | None = None  # None: a study from before sizes were recorded


@dataclass(frozen=True)
class StoredCompress:
    """A finished compress study: its options, the result its last run stored, its trials."""

    name: str
    run_dir: Path
    options: CompressOptions
    result: CompressResult
    trials: tuple[CompressTrial, ...]

    @property
    def exported(self) -> tuple[Chosen, ...]:
        """The budgets whose chosen policy was written with its weights (not the original model, not unmet)."""
        return tuple(c for c in self.result.chosen if c.trial is not None and c.weights_path is not None)

    def choose(self, *, budget_ms: float | None, trial: int | None) -> Chosen:
        """The chosen policy of budget ``budget_ms``, or the one of trial ``trial``; neither: the
        largest budget's. Only chosen trials have weights stored, so only they can be picked."""
        exported = self.exported
        budgets = ", ".join(f"{c.budget_ms:g}" for c in exported)
        trials = sorted({c.trial for c in exported})
        if budget_ms is not None and trial is not None:
            raise PolicyError("give budget or trial, not both: a compress study's budget names its chosen trial",
                              fields=("budget", "trial"))
        if not exported:
            raise PolicyError(f"compress study {self.name!r} has no chosen compressed policy to export (no trial fits "
                              "a budget, or the original model fits them); run more trials with autoc compress "
                              f"{self.run_dir} --trials N")
        if budget_ms is not None:
            found = [c for c in exported if math.isclose(c.budget_ms, budget_ms, rel_tol=1e-9, abs_tol=1e-12)]
            if not found:
                raise PolicyError(f"compress study {self.name!r} has no chosen policy for budget {budget_ms:g} ms; "
                                  f"its budgets with one are {budgets} ms", fields=("budget",))
            return found[0]
        if trial is not None:
            found = [c for c in exported if c.trial == trial]
            if not found:
                raise PolicyError(f"trial {trial} of compress study {self.name!r} has no stored weights (only the "
                                  f"trials chosen for a budget do); pick one of {trials}, or give a budget "
                                  f"({budgets} ms)", fields=("trial",))
            return max(found, key=lambda c: c.budget_ms)
        return max(exported, key=lambda c: c.budget_ms)

    def policy_file(self, chosen: Chosen) -> ModelPolicyFile:
        return load_model_policy(chosen.policy_path)

    def build_model(self, chosen: Chosen) -> torch.nn.Module:
        """The chosen trial's compressed model with its fine-tuned weights, in eval mode. The
        pruned shapes depend on the policy alone, so the user's original weights are not needed."""
        weights = Path(chosen.weights_path)
        if not weights.is_file():
            raise PolicyError(f"weights of trial {chosen.trial} ({weights}) are missing from run directory "
                              f"{self.run_dir}: restore them, or export another budget")
        file = self.policy_file(chosen)
        model = file.apply(load_model(file.reference.model, num_classes=file.reference.num_classes))
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except RuntimeError as exc:
            raise PolicyError(f"weights {weights} do not fit the policy {chosen.policy_path} "
                              f"({str(exc).splitlines()[0]}): the run directory was changed; restore it") from None
        return model.eval()

    def data(self) -> DatasetSplit:
        """The study's data split, loaded as `autoc compress` loaded it."""
        o = self.options
        return load_dataset(o.dataset, data_dir=o.data_dir, input_size=o.input_size, seed=o.seed,
                            max_train=o.max_train, max_val=o.max_val)

    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.options.input_size, self.options.input_size)


def is_compress_run(target: Path) -> bool:
    """Whether ``target`` is the run directory of an `autoc compress` study."""
    return Path(target).is_dir() and _stored(Path(target), OPTIONS_ATTR)[1] is not None


def open_compress_study(run_dir: Path) -> StoredCompress:
    """The compress study in ``run_dir``; a StorageError when it is not one or no run has finished."""
    run_dir = Path(run_dir)
    name, options = _stored(run_dir, OPTIONS_ATTR)
    if options is None:
        raise StorageError(f"{run_dir} holds no autoc compress study: give the run directory of a compress run "
                           "(runs/<study>)")
    result = stored_result(run_dir)
    if result is None:
        raise StorageError(f"compress study {name!r} in {run_dir} has not finished a run yet: resume it with "
                           f"autoc compress {run_dir}")
    study = optuna.load_study(study_name=name, storage=open_storage(default_storage_url(run_dir), create=False))
    trials = tuple(CompressTrial(number=t.number, predicted_ms=float(t.user_attrs[LATENCY_ATTR]),
                                 accuracy=t.user_attrs.get(ACCURACY_ATTR), size_kb=t.user_attrs.get(SIZE_ATTR))
                   for t in study.trials
                   if t.state == optuna.trial.TrialState.COMPLETE and LATENCY_ATTR in t.user_attrs)
    return StoredCompress(name=name, run_dir=run_dir, options=CompressOptions.from_dict(options), result=result,
                          trials=trials)
