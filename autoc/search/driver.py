"""`autoc search`: one direction, from options to a stored study and best_policy.json."""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from autoc.errors import BudgetError, StorageError
from autoc.evaluate.datasets import load_dataset
from autoc.evaluate.teacher import load_or_train_teacher, teacher_cache_path
from autoc.evaluate.train import TrainConfig, predict_logits
from autoc.export.policy_file import PolicyFile, write_policy
from autoc.latency.device import open_latency_model
from autoc.search.objective import ObjectiveContext, run_trial
from autoc.search.progress import SearchProgress
from autoc.search.results import TrialRecord, best_record, completed_records, pareto_front
from autoc.search.storage import default_storage_url, open_storage, open_study
from autoc.space import SearchSpace, load_space

DIRECTIONS = ["maximize", "minimize", "minimize"]  # accuracy, latency_ms, size_bytes
SAMPLERS = ("nsga2", "tpe", "random")
RUN_OPTIONS_ATTR = "autoc_run_options"  # how the data was loaded; see _record_options


@dataclass(frozen=True)
class SearchOptions:
    budget_ms: float
    space: str = "mbv2-cifar"
    dataset: str = "digits"
    data_dir: str | None = None
    device: str = "host"
    storage: str | None = None
    study: str | None = None
    trials: int = 30
    timeout_s: float | None = None
    seed: int = 0
    sampler: str = "nsga2"
    runs_dir: Path = Path("runs")
    finetune_steps: int = 20
    teacher_steps: int = 120
    batch_size: int = 32
    max_train: int | None = None
    max_val: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class SearchResult:
    study: str
    run_dir: Path
    policy_path: Path | None
    best: TrialRecord | None
    pareto: list[TrialRecord]
    trials_total: int
    trials_this_run: int
    feasible: int
    teacher_accuracy: float
    wall_seconds: float


def run_search(options: SearchOptions) -> SearchResult:
    start = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _check_options(options)
    space = load_space(options.space)
    data = load_dataset(
        options.dataset,
        data_dir=options.data_dir,
        input_size=space.input_size,
        seed=options.seed,
        max_train=options.max_train,
        max_val=options.max_val,
    )
    study_name = options.study or f"{space.name}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = options.runs_dir / study_name
    storage = open_storage(options.storage or _local_storage(run_dir))
    sampler = _make_sampler(options)
    identity = {
        "space": f"{space.name}:{space.fingerprint()}",
        "dataset": data.fingerprint,
        "device": options.device,
        "budget_ms": repr(float(options.budget_ms)),
    }
    latency = open_latency_model(options.device, runs_dir=options.runs_dir, space=space, progress=options.progress)
    _check_budget_feasible(space, latency, options.budget_ms, num_classes=data.num_classes)
    study = open_study(storage=storage, name=study_name, identity=identity, sampler=sampler, directions=DIRECTIONS)
    _record_options(study, options)

    finetune = TrainConfig(steps=options.finetune_steps, batch_size=options.batch_size, lr=0.01, seed=options.seed)
    teacher_config = TrainConfig(steps=options.teacher_steps, batch_size=options.batch_size, lr=0.05, alpha=0.0, seed=options.seed)
    arch = space.largest_arch(num_classes=data.num_classes)
    teacher = load_or_train_teacher(
        arch,
        data,
        cache_path=teacher_cache_path(
            options.runs_dir / "cache", space_fingerprint=space.fingerprint(), data=data, config=teacher_config
        ),
        config=teacher_config,
        progress=options.progress,
    )
    ctx = ObjectiveContext(
        space=space,
        data=data,
        latency=latency,
        teacher=teacher.model,
        teacher_logits=predict_logits(teacher.model, data.train_x),
        finetune=finetune,
        budget_ms=options.budget_ms,
        weights_dir=run_dir / "weights",
    )

    done_before = _count_finished(study)
    remaining = max(0, options.trials - done_before)
    before = completed_records(study, budget_ms=options.budget_ms)
    best_before = best_record(before)
    progress = SearchProgress(
        total=options.trials,
        done=done_before,
        feasible=sum(r.feasible for r in before),
        best=best_before.accuracy if best_before else None,
        enabled=options.progress,
    )
    try:
        if remaining > 0:
            study.optimize(
                lambda trial: run_trial(trial, ctx),
                n_trials=remaining,
                timeout=options.timeout_s,
                callbacks=[progress],
                catch=(),
            )
    finally:
        progress.close()

    records = completed_records(study, budget_ms=options.budget_ms)
    best = best_record(records)
    trials_total = _count_finished(study)
    policy_path = _write_best(best, run_dir=run_dir, study=study_name, space=space, device=options.device) if best else None
    return SearchResult(
        study=study_name,
        run_dir=run_dir,
        policy_path=policy_path,
        best=best,
        pareto=pareto_front(records),
        trials_total=trials_total,
        trials_this_run=trials_total - done_before,
        feasible=sum(r.feasible for r in records),
        teacher_accuracy=teacher.val_accuracy,
        wall_seconds=time.perf_counter() - start,
    )


def _check_options(options: SearchOptions) -> None:
    if not options.budget_ms > 0:
        raise BudgetError(f"--budget-ms must be positive, got {options.budget_ms}; give the latency budget in ms, e.g. --budget-ms 20")
    if options.trials < 1:
        raise BudgetError(f"--trials must be at least 1, got {options.trials}")
    if options.sampler not in SAMPLERS:
        raise BudgetError(f"--sampler {options.sampler!r} is unknown; use one of {', '.join(SAMPLERS)}")


def _local_storage(run_dir: Path) -> str:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create run directory {run_dir}: {exc.strerror}; pass a writable --runs-dir") from None
    return default_storage_url(run_dir)


def _make_sampler(options: SearchOptions) -> optuna.samplers.BaseSampler:
    if options.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=options.seed, multivariate=True, n_startup_trials=min(10, options.trials // 3 + 1))
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=options.seed)
    population = max(4, min(50, options.trials // 3))
    return optuna.samplers.NSGAIISampler(seed=options.seed, population_size=population)


def _check_budget_feasible(space: SearchSpace, latency, budget_ms: float, *, num_classes: int) -> None:
    cheapest = min(
        latency.predict(candidate.netspec(), candidate.policy)
        for candidate in space.minimal_candidates(num_classes=num_classes)
    )
    if cheapest > budget_ms:
        raise BudgetError(
            f"no candidate of space {space.name!r} can meet {budget_ms:g} ms: the smallest predicted latency "
            f"is {cheapest:.3f} ms; raise --budget-ms to at least that, or use a smaller space"
        )


def _record_options(study: optuna.Study, options: SearchOptions) -> None:
    """Store how the data was loaded (not part of the identity) so that export and report
    can reload the same split from the storage alone."""
    if RUN_OPTIONS_ATTR in study.user_attrs:
        return
    study.set_user_attr(
        RUN_OPTIONS_ATTR,
        {
            "dataset": options.dataset,
            "data_dir": str(Path(options.data_dir).resolve()) if options.data_dir else None,
            "seed": options.seed,
            "max_train": options.max_train,
            "max_val": options.max_val,
            "space": options.space,
            "runs_dir": str(Path(options.runs_dir).resolve()),
        },
    )


def _count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _write_best(best: TrialRecord, *, run_dir: Path, study: str, space: SearchSpace, device: str) -> Path:
    from autoc.candidate import Candidate

    weights_name = None
    if best.weights and Path(best.weights).is_file():
        weights_name = "best_weights.pt"
        shutil.copyfile(best.weights, run_dir / weights_name)
    policy = PolicyFile(
        candidate=Candidate.from_dict(best.candidate),
        space={"name": space.name, "fingerprint": space.fingerprint()},
        metrics={
            "accuracy": best.accuracy,
            "latency_ms": best.latency_ms,
            "size_bytes": best.size_bytes,
            "macs": best.macs,
            "params": best.params,
        },
        device=device,
        study=study,
        trial=best.number,
        weights=weights_name,
    )
    return write_policy(policy, run_dir / "best_policy.json")


def print_summary(result: SearchResult, *, budget_ms: float, file=sys.stdout) -> None:
    print(
        f"study {result.study}: {result.trials_total} trials ({result.trials_this_run} this run), "
        f"{result.feasible} trained within {budget_ms:g} ms; teacher accuracy {result.teacher_accuracy:.4f}; "
        f"{result.wall_seconds:.0f} s",
        file=file,
    )
    if not result.pareto:
        print("no feasible candidate was found; run more trials or raise --budget-ms", file=file)
        return
    print("Pareto front (accuracy, predicted latency, size):", file=file)
    print(f"  {'trial':>5}  {'accuracy':>8}  {'latency_ms':>10}  {'size_kB':>8}  {'MMACs':>7}  {'params':>8}", file=file)
    for r in result.pareto:
        print(
            f"  {r.number:>5}  {r.accuracy:>8.4f}  {r.latency_ms:>10.3f}  {r.size_bytes / 1024:>8.1f}  "
            f"{r.macs / 1e6:>7.2f}  {r.params:>8}",
            file=file,
        )
    best = result.best
    print(
        f"chosen: trial {best.number}, accuracy {best.accuracy:.4f}, {best.latency_ms:.3f} ms predicted, "
        f"{best.size_bytes / 1024:.1f} kB -> {result.policy_path}",
        file=file,
    )
