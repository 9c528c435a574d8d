"""One search worker: a loop of heartbeat-watched trials against the shared storage.

Every worker (the driver's own process with ``--workers 1``, or a Ray task) runs this same
loop. It stops when the study holds ``target`` finished (COMPLETE or PRUNED) trials, counted
across runs and workers, or at the deadline. Before each trial it fails the trials of dead
workers whose heartbeat went silent (their parameters are queued again by the storage's retry
callback, and run first), so nothing a dead worker held is lost.
"""
from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import TrialState

from autoc.search.context import build_objective_context
from autoc.search.objective import ObjectiveContext, run_trial
from autoc.search.options import SearchOptions
from autoc.search.samplers import make_sampler, worker_seed
from autoc.search.storage import Heartbeat, open_storage

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WORKER_ATTR = "worker"  # user attribute: which host/process ran a trial
SURPLUS_ATTR = "surplus"  # user attribute of a trial begun when the target was already met


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker runs: the options, the storage, the trial target, the deadline and its threads."""

    options: SearchOptions  # study, storage and runs_dir already resolved by the driver
    storage_url: str
    target: int  # finished trials the study must hold
    deadline: float | None  # time.time() after which no trial starts
    threads: int
    index: int = 0  # worker number, for its sampler seed
    label: str = ""  # e.g. the Ray node id; host and pid are added
    poll_s: float = 0.5


@dataclass(frozen=True)
class WorkerReport:
    """What a worker did: its label, the trials it finished and the seconds it ran."""

    label: str
    trials: int  # trials this worker finished
    seconds: float


class _Surplus(Exception):
    """Ends a trial that started after other workers had already reached the target."""


def run_worker(spec: WorkerSpec, *, context: ObjectiveContext | None = None, on_trial=None) -> WorkerReport:
    """Run trials until the study is done. ``context`` skips building it (the driver's own
    process has one); ``on_trial(study, frozen_trial)`` is called after each trial."""
    start = time.perf_counter()
    torch.set_num_threads(spec.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    options = spec.options
    heartbeat = Heartbeat(interval_s=options.workers.heartbeat_interval_s, grace_s=options.workers.grace_period_s)
    storage = open_storage(spec.storage_url, heartbeat=heartbeat)
    study = optuna.load_study(study_name=options.storage.study, storage=storage)
    seed = worker_seed(options, worker_index=spec.index, trials_stored=len(study.get_trials(deepcopy=False)))
    ctx = context or build_objective_context(options, threads=spec.threads)
    study.sampler = make_sampler(options, seed=seed, space=ctx.space, latency=ctx.latency,
                                 num_classes=ctx.data.num_classes)
    label = f"{socket.gethostname()}:{os.getpid()}" + (f":{spec.label}" if spec.label else "")

    def objective(trial: optuna.trial.Trial):
        trial.set_user_attr(WORKER_ATTR, label)  # every trial a worker took, surplus ones too
        if _is_surplus(study, trial.number, spec.target):
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise _Surplus()
        return run_trial(trial, ctx)

    ran = []

    def count(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state in FINISHED:
            ran.append(trial.number)

    callbacks = [count, on_trial] if on_trial else [count]
    while spec.deadline is None or time.time() < spec.deadline:
        optuna.storages.fail_stale_trials(study)
        counts = _count_states(study)
        finished = sum(counts[s] for s in FINISHED)
        if finished >= spec.target:
            break
        if finished + counts[TrialState.RUNNING] >= spec.target and counts[TrialState.WAITING] == 0:
            time.sleep(spec.poll_s)  # the rest is running elsewhere; take over if a runner dies
            continue
        try:
            study.optimize(objective, n_trials=1, callbacks=callbacks, catch=(_Surplus,))
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # our trial was taken for a dead one (heartbeat late); it has been re-queued
    return WorkerReport(label=label, trials=len(ran), seconds=time.perf_counter() - start)


def _count_states(study: optuna.Study) -> dict[TrialState, int]:
    counts = dict.fromkeys(TrialState, 0)
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state] += 1
    return counts


def _is_surplus(study: optuna.Study, number: int, target: int) -> bool:
    """Trial numbers are handed out atomically by the storage, so ranking running trials by
    number decides, without a lock, which of several racing workers may go on."""
    ahead = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state in FINISHED or (trial.state == TrialState.RUNNING and trial.number < number):
            ahead += 1
    return ahead >= target


