"""`autoc search`: one direction, from options to a stored study and best_policy.json."""
from __future__ import annotations

import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Iterator

import optuna
from optuna.trial import TrialState

from autoc.data.preprocessing import Preprocessing
from autoc.errors import BudgetError, OptionError, StorageError
from autoc.training.compute import training_device
from autoc.evaluate.memory import check_largest_fits
from autoc.files import check_can_write, write_bytes_atomic
from autoc.policy.file import PolicyFile, record_metrics, space_reference, write_policy
from autoc.latency.device import open_latency_model, usable_as_file_name
from autoc.latency.profile import host_runtime
from autoc.latency.span import LatencySpan, latency_span
from autoc.search.context import build_objective_context, load_inputs, supernet_config
from autoc.evaluate.recipe import scratch_recipe
from autoc.search.finalists import FinalistResult, chosen_finalist, finalist_picks, train_finalists
from autoc.search.options import AUTO, SearchOptions, stored_record, worker_threads
from autoc.search.progress import SearchProgress
from autoc.search.results import (BudgetChoice, TrialRecord, accuracy_text, best_record, budget_choices,
                                  budget_table_lines, completed_records, pareto_front)
from autoc.search.seed_noise import rerun_top_trials
from autoc.search.separation import separation_text
from autoc.search.samplers import make_sampler, startup_trials
from autoc.search.startup import SPREAD_SAMPLERS, enqueue_start, spread_start
from autoc.search.stored import PREPROCESSING_ATTR
from autoc.search.storage import (default_storage_url, holds_a_study, open_storage, open_study,
                                  retry_failed_trials, sqlite_file)
from autoc.search.worker import SURPLUS_ATTR, WorkerSpec, run_worker
from autoc.run_paths import budget_suffix, stored_path, stored_runs_dir
from autoc.space import SearchSpace, resolve_space
from autoc.space.loader import shipped_dir

__all__ = ["BudgetChoice", "SearchOptions", "SearchResult", "run_search", "summary_lines"]

logger = logging.getLogger(__name__)

DIRECTIONS = ["maximize", "minimize", "minimize"]  # accuracy, latency_ms, size_bytes
SPACE_COPY = "space.yaml"  # the run directory's copy of a space file of the user's
RUN_OPTIONS_ATTR = "autoc_run_options"  # how the data was loaded; see _record_options


@dataclass(frozen=True)
class SearchResult:
    """What a search run returns: the study, the chosen trial and policy file, the front and the counts."""

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
    over_budget: int = 0  # completed trials predicted over a budget: priced, never trained
    finalists: dict[int, FinalistResult] = field(default_factory=dict)  # by trial number; empty without the stage
    separation: str | None = None  # which trials the estimate does not separate from the chosen one
    # One per budget, smallest first (one entry for a single budget): budget_ms's is ``best``; with
    # several, each has its own best_policy-<budget>ms.json
    budgets: tuple[BudgetChoice, ...] = ()


def run_search(options: SearchOptions) -> SearchResult:
    """Run (or resume) the search ``options`` describe and choose the best feasible trial::

        result = run_search(SearchOptions(budget_ms=20, trials=10))
        print(result.best, result.policy_path)   # runs/<study>/best_policy.json

    Trials go to an Optuna study (SQLite in the run directory unless ``storage.url`` names
    another); the same options and study name resume it."""
    start = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _check_options(options)
    _check_folders_writable(options)
    inputs = load_inputs(options)
    space, data = inputs.space, inputs.data
    if training_device(options.train_device).type == "cpu":  # a GPU's memory is the GPU's to report
        check_largest_fits(space, num_classes=data.num_classes, batch_size=options.batch_size)  # the teacher
    # Absolute paths and a fixed study name: workers elsewhere must find the same run directory.
    where = options.storage
    study_name = where.study or f"{space.name}-{datetime.now():%Y%m%d-%H%M%S}"
    options = replace(
        options,
        storage=replace(where, study=study_name, runs_dir=where.runs_dir.resolve(),
                        run_dir=where.run_dir.resolve() if where.run_dir is not None else None),
        space=str(Path(options.space).resolve()) if Path(options.space).is_file() else options.space,
        data_dir=str(Path(options.data_dir).resolve()) if options.data_dir else None,
    )
    run_dir = options.run_directory()
    runs_dir = options.storage.runs_dir
    storage_url = options.storage.url or default_storage_url(run_dir)
    identity = {
        "space": f"{space.name}:{space.fingerprint()}",
        "dataset": data.fingerprint,
        "device": options.device,
        "budget_ms": repr(float(options.budget_ms)),
    }
    if options.supernet is not None:  # another weight source gives other accuracies: not the same study
        identity["supernet_steps"] = str(options.supernet.steps)
        identity["supernet_recipe"] = str(supernet_config(options))  # studies from before it lack it: not checked
    if options.budget_mj is not None:
        identity["budget_mj"] = repr(float(options.budget_mj))
    # Every check that can refuse the input comes before the run directory and the storage exist.
    latency = open_latency_model(options.device, runs_dir=runs_dir, space=space, progress=options.progress)
    span = _check_budgets_feasible(space, latency, options, num_classes=data.num_classes)
    with _removed_on_failure(run_dir=run_dir, storage_url=storage_url):
        _check_writable(run_dir)  # weights and the chosen policy go here whatever the storage
        sampler = make_sampler(options, space=space, latency=latency, num_classes=data.num_classes)
        study = open_study(
            storage=open_storage(storage_url), name=study_name, identity=identity, sampler=sampler,
            directions=DIRECTIONS,
        )
    options = _space_in_run(options, run_dir=run_dir)
    _record_options(study, options, replace_stored=False)
    if data.preprocessing is not None:
        study.set_user_attr(PREPROCESSING_ATTR, data.preprocessing.to_dict())
    retry_failed_trials(study, skip_attr=SURPLUS_ATTR)  # e.g. a Ctrl-C'd trial, as the heartbeat retries a killed one
    if options.spread_start and options.sampler in SPREAD_SAMPLERS:
        enqueue_start(study, spread_start(space, latency, count=startup_trials(options), budget_ms=options.budget_ms,
                                          budget_mj=options.budget_mj, num_classes=data.num_classes, seed=options.seed))
    if span.slowest_ms is not None and span.slowest_ms <= options.budget_ms:  # said once nothing refuses the run
        logger.warning(
            f"budget {options.budget_ms:g} ms is above every candidate of space {space.name!r} on {options.device} "
            f"(they predict {span.describe()}): it does not constrain the search; give a budget below "
            f"{span.slowest_ms:.3g} ms for one that does"
        )
    threads = worker_threads(options)
    ctx = build_objective_context(options, inputs=inputs, progress=options.progress, threads=threads)  # creates the caches

    progress = SearchProgress(study, total=options.trials, budget_ms=options.budget_ms, enabled=options.progress)
    done_before = progress.done
    ran_here = 0  # trials this command's workers finished: another process on the study runs its own
    spec = WorkerSpec(
        options=options,
        storage_url=storage_url,
        target=options.trials,
        deadline=time.time() + options.timeout_s if options.timeout_s else None,
        threads=threads,
    )
    try:
        if done_before < options.trials:
            ran_here = _run_workers(spec, options=options, ctx=ctx, progress=progress)
    finally:
        progress.close()
    _record_options(study, options, replace_stored=True)  # e.g. the new --trials, once they ran

    records = completed_records(study, budget_ms=options.budget_ms, run_dir=run_dir)
    log = logger.info if options.progress else _no_log
    if rerun_top_trials(study, records, options=options, count=options.finalists.noise_trials, inputs=inputs,
                        threads=threads, log=log):
        records = completed_records(study, budget_ms=options.budget_ms, run_dir=run_dir)
    best = best_record(records)
    finalists: dict[int, FinalistResult] = {}
    wanted = options.finalists.count
    picks = finalist_picks(records, wanted) if wanted and best is not None else []
    if picks and (len(picks) > 1 or wanted != AUTO):  # auto with no tie: the estimate has chosen
        finalists = train_finalists(
            study, picks, data, config=scratch_recipe(
                steps=options.finalists.steps, batch_size=options.batch_size, seed=options.seed,
                augment=options.finalists.augment,
            ),
            weights_dir=run_dir / "finalists", log=log,
            device=ctx.train_device,  # resolved once, with the context
        )
        best = chosen_finalist(records, finalists) or best
    separation = separation_text(best, records, run_dir=run_dir) if best else None
    if separation is None and wanted == AUTO and len(picks) == 1:
        separation = ("estimate noise: no other feasible trial stores per-image results (made by an older autoc, or "
                      "none there): finalists auto had nothing to weigh and trained none; give a count of finalists")
    trials_total = _count_finished(study)
    def write(record: TrialRecord, suffix: str = "") -> Path:
        return _write_best(record, run_dir=run_dir, study=study_name, space=space, device=options.device,
                           preprocessing=data.preprocessing, suffix=suffix)

    policy_path = write(best) if best else None
    several = len(options.sweep_ms) > 1
    choices = tuple(
        replace(choice, policy_path=write(choice.best, budget_suffix(choice.budget_ms, several=True)) if several
                else policy_path) if choice.best is not None else choice
        for choice in budget_choices(records, options.sweep_ms, chosen=best)
    )
    return SearchResult(
        study=study_name,
        run_dir=run_dir,
        policy_path=policy_path,
        best=best,
        pareto=pareto_front(records),
        trials_total=trials_total,
        trials_this_run=ran_here,
        feasible=sum(r.feasible for r in records),
        over_budget=sum(not r.feasible for r in records),
        teacher_accuracy=ctx.teacher_accuracy,
        wall_seconds=time.perf_counter() - start,
        finalists=finalists,
        separation=separation,
        budgets=choices,
    )


def _no_log(message: str) -> None:
    pass


def _run_workers(spec: WorkerSpec, *, options: SearchOptions, ctx, progress: SearchProgress) -> int:
    """One worker in this process (no Ray, nothing to start), or Ray tasks polled for progress.
    Returns how many trials they finished."""
    workers = options.workers
    if workers.count == 1 and workers.ray_address is None:
        return run_worker(spec, context=ctx, on_trial=progress).trials
    from autoc.search.ray_workers import run_ray_workers

    cpus = workers.cpus or (1 if workers.ray_address else worker_threads(options))
    gpus = workers.gpus
    if gpus is None:  # a worker training on a GPU gets one reserved (Ray then shows it only that one)
        gpus = 0.0 if ctx.train_device is None or ctx.train_device.type == "cpu" else 1.0
    reports = run_ray_workers(
        spec,
        workers=workers.count,
        address=workers.ray_address,
        cpus_per_worker=cpus,
        gpus_per_worker=gpus,
        on_poll=lambda: progress.sync() >= options.trials,  # at a deadline, workers finish their trials
    )
    return sum(report.trials for report in reports)


def _check_folders_writable(options: SearchOptions) -> None:
    """Before the data, the host calibration and the teacher: a search writes the caches, the host's
    profile (a named device's is only read) and its run directory, and minutes of work would be
    lost at the first write."""
    fields = ("storage.runs_dir",)
    try:
        for folder in ("cache", *(("devices",) if host_runtime(options.device) is not None else ())):
            check_can_write(options.storage.runs_dir / folder, fix="set a writable storage.runs_dir (or make it "
                            "writable); nothing was changed")
        if options.storage.study is not None:
            run_dir = options.run_directory()
            check_can_write(run_dir, what="run directory", fix=f"make it writable (e.g. chmod -R u+w {run_dir}) or "
                            "set another storage.runs_dir; nothing stored was changed")
    except StorageError as error:
        raise StorageError(str(error), fields=fields) from None  # the fix names the option: say which


def _check_options(options: SearchOptions) -> None:
    """What the options cannot check themselves: the study name as a folder, the training device
    and the Ray cluster on this machine; each value was checked when the options were made."""
    if options.storage.study is not None:
        check_study_name(options.storage.study)
    training_device(options.train_device)  # an unknown or absent GPU fails here, before a study is stored
    if options.workers.ray_address:  # fail in seconds, before any data is loaded or teacher trained
        from autoc.search.ray_workers import check_reachable

        check_reachable(options.workers.ray_address)


# autoc's own folders under the runs directory: a study of that name would mix into them.
RESERVED_STUDY_NAMES = ("cache", "devices")


def check_study_name(name: str) -> str:
    """A study name becomes its run directory runs/<name>, as a device name becomes a file name."""
    if not usable_as_file_name(name):
        raise OptionError(f"study name {name!r} is not usable as a run directory name: set storage.study to letters, "
                          "digits, '-', '_' or '.', no path separators and no leading '.' (e.g. mbv2-20ms)",
                          fields=("storage.study",))
    if name in RESERVED_STUDY_NAMES:
        raise OptionError(f"study name {name!r} is one of autoc's own folders under the runs directory "
                          f"({', '.join(RESERVED_STUDY_NAMES)}): set storage.study to another name (e.g. {name}-study)",
                          fields=("storage.study",))
    return name


@contextmanager
def _removed_on_failure(*, run_dir: Path, storage_url: str) -> Iterator[None]:
    """Until the study exists, a failure removes the run directory and SQLite file this run created,
    never ones that were there before (nor a file another search has meanwhile put a study in)."""
    database = sqlite_file(storage_url)
    new_dir = not run_dir.exists()
    new_database = database is not None and not database.exists()
    try:
        yield
    except BaseException:
        if new_database and not holds_a_study(database):
            database.unlink(missing_ok=True)
        if new_dir and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise


def _check_writable(run_dir: Path) -> None:
    """Fail before any trial starts, not at the first write of a trial (a traceback from the
    storage, the stored study untouched but the user none the wiser)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create run directory {run_dir}: {exc.strerror}; set a writable storage.runs_dir",
                           fields=("storage.runs_dir",)) from None
    fix = f"make it writable (e.g. chmod -R u+w {run_dir}) and re-run; nothing stored was changed"
    try:
        tempfile.TemporaryFile(dir=run_dir).close()
    except OSError as exc:
        raise StorageError(f"run directory {run_dir} is not writable ({exc.strerror}); {fix}") from None
    database = run_dir / "study.db"
    if database.is_file():
        try:
            open(database, "r+b").close()  # opened for writing, nothing written
        except OSError as exc:
            raise StorageError(f"study database {database} is not writable ({exc.strerror}); {fix}") from None


def _check_budgets_feasible(space: SearchSpace, latency, options: SearchOptions, *, num_classes: int) -> LatencySpan:
    """Refuse up front a budget that even the space's smallest candidates exceed; returns the
    space's predicted latency span on the device."""
    span = latency_span(space, latency, num_classes=num_classes)
    lowest = min(options.sweep_ms)  # every budget of a sweep is checked: the smallest decides
    if span.fastest_ms > lowest:
        raise_what = "budget_ms" if not options.budgets_ms else "every budget of budgets_ms"
        raise BudgetError(
            f"no candidate of space {space.name!r} can meet {lowest:g} ms on {options.device}: its "
            f"candidates predict {span.describe()} there; raise {raise_what} to at least {span.fastest_ms:.3f}, or "
            "use a smaller space or a faster device", fields=("budget_ms", "budgets_ms")
        )
    if options.budget_mj is None:
        return span
    smallest = [(c.netspec(), c.policy) for c in space.minimal_candidates(num_classes=num_classes)]
    cheapest_mj = min(latency.predict_energy_mj(spec, policy) for spec, policy in smallest)
    if cheapest_mj > options.budget_mj:
        raise BudgetError(
            f"no candidate of space {space.name!r} can meet {options.budget_mj:g} mJ: the smallest estimated energy "
            f"is {cheapest_mj:.4f} mJ; raise budget_mj to at least that, or leave it out", fields=("budget_mj",)
        )
    return span


def _record_options(study: optuna.Study, options: SearchOptions, *, replace_stored: bool) -> None:
    """Store how the data was loaded (not part of the identity) so that export and report
    can reload the same split from the storage alone, and resume can repeat the command."""
    if RUN_OPTIONS_ATTR in study.user_attrs and not replace_stored:
        return
    run_dir = options.run_directory()
    study.set_user_attr(
        RUN_OPTIONS_ATTR,
        {
            # how export and report reload the data split (dataset, data_dir, seed, max_train, max_val) and
            # what lets `autoc search --resume` repeat the command; rewritten by each run
            **stored_record(options),
            # paths relative to the run directory, so that a copied or moved run reads its own files
            "space": stored_path(options.space, run_dir=run_dir) if Path(options.space).is_absolute() else options.space,
            # where export and report find the caches and profiles: ".." when the runs dir holds the run
            "runs_dir": stored_runs_dir(options.storage.runs_dir, run_dir=run_dir),
            # a study in a server storage is opened by name, not from its run directory: where that is
            **({"run_dir": str(run_dir)} if _elsewhere(options.storage.url, run_dir=run_dir) else {}),
            "threads": worker_threads(options),  # estimates repeat bit for bit at one thread count
        },
    )


def _elsewhere(url: str | None, *, run_dir: Path) -> bool:
    """Whether the storage ``url`` is other than the run directory's own study.db."""
    return url is not None and sqlite_file(url) not in (run_dir / "study.db", (run_dir / "study.db").resolve())


def _space_in_run(options: SearchOptions, *, run_dir: Path) -> SearchOptions:
    """A space from a file of the user's (a path, or a name found in ./search_spaces) is copied into
    the run directory as space.yaml and the search reads that copy, so that export, report and
    resume find it wherever the run directory is copied or moved; a shipped space stays a name."""
    source = resolve_space(options.space)
    if source.resolve().parent == shipped_dir().resolve():
        return options
    copy = run_dir / SPACE_COPY
    if not copy.exists() or not copy.samefile(source):
        write_bytes_atomic(copy, source.read_bytes())
    return replace(options, space=str(copy))


def _count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _write_best(best: TrialRecord, *, run_dir: Path, study: str, space: SearchSpace, device: str,
                preprocessing: Preprocessing | None, suffix: str = "") -> Path:
    """best_policy{suffix}.json and, where the trial has them, its weights as best_weights{suffix}.pt."""
    from autoc.candidate import Candidate

    weights_name = None
    if best.weights and Path(best.weights).is_file():
        weights_name = f"best_weights{suffix}.pt"
        write_bytes_atomic(run_dir / weights_name, Path(best.weights).read_bytes())
    candidate = Candidate.from_dict(best.candidate)
    policy = PolicyFile(
        candidate=candidate,
        space=space_reference(space),
        metrics=record_metrics(best),
        device=device,
        study=study,
        trial=best.number,
        weights=weights_name,
        preprocessing=None if preprocessing is None else preprocessing.at_size(candidate.arch.input_size),
    )
    return write_policy(policy, run_dir / f"best_policy{suffix}.json")


def summary_lines(result: SearchResult, *, budget_ms: float) -> list[str]:
    """The search's result as the CLI prints it: counts, the Pareto front, finalists, the choice."""
    lines = [
        f"study {result.study}: {result.trials_total} trials ({result.trials_this_run} this run), "
        f"{result.feasible} trained within {budget_ms:g} ms, {result.over_budget} over budget (not trained); teacher accuracy {result.teacher_accuracy:.4f}; "
        f"{result.wall_seconds:.0f} s"
    ]
    if not result.pareto:
        return lines + ["no feasible candidate was found; run more trials or raise the latency budget"]
    lines.append("Pareto front (accuracy, predicted latency, size):")
    lines.append(f"  {'trial':>5}  {'accuracy':>8}  {'latency_ms':>10}  {'size_kB':>8}  {'MMACs':>7}  {'params':>8}")
    for r in result.pareto:
        lines.append(f"  {r.number:>5}  {r.accuracy:>8.4f}  {r.latency_ms:>10.3f}  {r.size_bytes / 1024:>8.1f}  "
                     f"{r.macs / 1e6:>7.2f}  {r.params:>8}")
    if result.finalists:
        lines.append("finalists (trained from scratch; accuracy on the validation split):")
        for number, finalist in sorted(result.finalists.items(), key=lambda item: -item[1].accuracy):
            lines.append(f"  trial {number:>5}  accuracy {finalist.accuracy:.4f}  ({finalist.seconds:.0f} s)")
    best = result.best
    lines.append(f"chosen: trial {best.number}, {accuracy_text(best)}, {best.latency_ms:.3f} ms predicted, "
                 f"{best.size_bytes / 1024:.1f} kB -> {result.policy_path}")
    if result.separation:
        lines.append(result.separation)
    if len(result.budgets) > 1:
        lines += budget_table_lines(list(result.budgets))
    return lines
