"""A stored study written in the storage format `autoc search` writes, without training.

Candidates are sampled from the real mbv2-cifar space through Optuna trials; their latency
is predicted by the real lookup-table model over a device profile whose block times are
synthetic (proportional to each block's MACs: profiles are data). Accuracies are synthetic,
rising with latency; over-budget trials are left untrained (accuracy 0), as in the search.
"""
from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from autoc.candidate import Candidate
from autoc.evaluate.metrics import size_bytes
from autoc.policy.file import PolicyFile, write_policy
from autoc.latency.blocks import Unit, network_units
from autoc.latency.model import LookupTableLatencyModel
from autoc.latency.profile import Correction, DeviceIdentity, DeviceProfile, save_profile
from autoc.search.driver import DIRECTIONS, RUN_OPTIONS_ATTR
from autoc.search.objective import CONSTRAINT
from autoc.search.results import CORRECT_ATTR, best_record, completed_records
from autoc.search.separation import encode_correct
from autoc.search.storage import IDENTITY_PREFIX, default_storage_url
from autoc.space import load_space, sample_candidate

DEVICE = "testdev"
COMPLETE = 12
VAL_IMAGES = 2000


@dataclass(frozen=True)
class FixtureStudy:
    name: str
    run_dir: Path
    runs_dir: Path
    budget_ms: float
    profile: DeviceProfile

    @property
    def storage(self) -> str:
        return default_storage_url(self.run_dir)


def unit_ms(unit: Unit) -> float:
    """Synthetic block time: a fixed cost plus one proportional to MACs; int8 runs faster."""
    resolution, macs = unit.input_shape[-1], 0
    for conv in unit.convs:
        resolution = math.ceil(resolution / conv.stride)
        macs += conv.cout * (conv.cin // conv.groups) * conv.kernel**2 * resolution**2
    macs += unit.classifier_in * unit.num_classes
    return (0.01 + 4e-7 * macs) * (0.6 if unit.precision == "int8" else 1.0)


def build_study(runs_dir: Path, name: str, *, seed: int = 0, with_profile: bool = True) -> FixtureStudy:
    space = load_space("mbv2-cifar")
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    # Sampling in memory then adding whole trials costs one SQLite commit per trial, not per parameter.
    sampling = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    asked = [sampling.ask() for _ in range(COMPLETE)]
    candidates = [sample_candidate(space, t, num_classes=10) for t in asked]
    units = [u for c in candidates for u in network_units(c.netspec(), c.policy) if u.measurable]
    identity = DeviceIdentity("synthetic test CPU", 4, 1, "onnxruntime", "0", "3", "0", ("fp32", "int8"), "2026-11-23")
    profile = DeviceProfile(
        device=DEVICE, identity=identity, blocks={u.key: unit_ms(u) for u in units},
        correction=Correction(scale=0.9, intercept_ms=0.05),
    )
    latency_model = LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)
    latencies = [latency_model.predict(c.netspec(), c.policy) for c in candidates]
    budget = sorted(latencies)[COMPLETE * 2 // 3]  # a third of the trials over budget
    study = optuna.create_study(study_name=name, storage=default_storage_url(run_dir), directions=DIRECTIONS)
    identity_attrs = {"space": f"{space.name}:{space.fingerprint()}", "dataset": "digits:synthetic",
                      "device": DEVICE, "budget_ms": repr(budget)}
    for key, value in identity_attrs.items():
        study.set_user_attr(IDENTITY_PREFIX + key, value)
    study.set_user_attr(RUN_OPTIONS_ATTR, {"dataset": "digits", "runs_dir": str(runs_dir.resolve())} if with_profile else {})
    rng = random.Random(seed)
    started = datetime(2026, 11, 23, 9, 0, tzinfo=None)
    for i, (trial, candidate, latency) in enumerate(zip(asked, candidates, latencies)):
        frozen = _completed(trial, candidate, latency, budget=budget, rng=rng, weights_dir=run_dir / "weights")
        frozen.datetime_start = started + timedelta(seconds=40 * i)
        frozen.datetime_complete = frozen.datetime_start + timedelta(seconds=35)
        study.add_trial(frozen)
    for state in (TrialState.FAIL, TrialState.PRUNED):
        study.add_trial(optuna.trial.create_trial(state=state))
    study.ask()  # left running, as a crashed worker leaves it
    if with_profile:
        save_profile(profile, runs_dir / "devices" / f"{DEVICE}.json")
    _write_best_policy(study, run_dir=run_dir, budget=budget, space=space)
    return FixtureStudy(name=name, run_dir=run_dir, runs_dir=runs_dir, budget_ms=budget, profile=profile)


def _completed(trial, candidate: Candidate, latency: float, *, budget: float, rng: random.Random, weights_dir: Path):
    """The trial as the objective leaves it (see autoc.search.objective.run_trial)."""
    spec = candidate.netspec()
    size = size_bytes(spec, candidate.policy)
    attrs = {"candidate": candidate.to_dict(), "latency_ms": latency, "size_bytes": size, "feasible": latency <= budget}
    accuracy = 0.0
    if attrs["feasible"]:
        weights = sum(c.cout * (c.cin // c.groups) * c.kernel**2 for c in spec.convs())
        attrs.update(params=weights, macs=weights * 64, weights=str(weights_dir / f"trial-{trial.number}.pt"))
        target = min(0.97, 0.6 + 0.12 * math.log1p(latency) + rng.uniform(-0.05, 0.05))
        correct = per_image_results(target, trial=trial.number)
        attrs[CORRECT_ATTR] = encode_correct(correct)
        accuracy = float(correct.mean())
    return optuna.trial.create_trial(
        values=[accuracy, latency, float(size)], params=trial.params, distributions=trial.distributions,
        user_attrs=attrs, constraints={CONSTRAINT: latency - budget},
    )


def per_image_results(accuracy: float, *, trial: int) -> np.ndarray:
    """Which of VAL_IMAGES images a network of about ``accuracy`` gets right. Networks err alike, as
    real ones do: an image's difficulty is shared, each network adds its own noise to it."""
    difficulty = np.random.default_rng(0).random(VAL_IMAGES)
    own = np.random.default_rng(1000 + trial).normal(0.0, 0.15, VAL_IMAGES)
    score = difficulty + own
    return score < np.quantile(score, accuracy)


def _write_best_policy(study, *, run_dir: Path, budget: float, space) -> None:
    best = best_record(completed_records(study, budget_ms=budget))
    policy = PolicyFile(
        candidate=Candidate.from_dict(best.candidate), space={"name": space.name, "fingerprint": space.fingerprint()},
        metrics={"accuracy": best.accuracy, "latency_ms": best.latency_ms, "size_bytes": best.size_bytes,
                 "macs": best.macs, "params": best.params},
        device=DEVICE, study=study.study_name, trial=best.number,
    )
    write_policy(policy, run_dir / "best_policy.json")


@pytest.fixture(scope="package")
def stored_study(tmp_path_factory) -> FixtureStudy:
    return build_study(tmp_path_factory.mktemp("report") / "runs", "fixture")


@pytest.fixture(scope="package")
def report(stored_study, tmp_path_factory) -> Path:
    """`autoc report` of the fixture study, written once."""
    from autoc.cli import main

    out = tmp_path_factory.mktemp("html") / "report"
    assert main(["report", str(stored_study.run_dir), "--out", str(out)]) == 0
    return out
