"""Optuna storage: the single source of truth of a study, and the identity check for resuming."""
from __future__ import annotations

import sqlite3
import time
import warnings
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url

from autoc.errors import StorageError, first_line, mask_passwords

IDENTITY_PREFIX = "autoc."
METRIC_NAMES = ("accuracy", "latency_ms", "size_bytes")  # the order of the driver's DIRECTIONS
# The options (StorageOptions fields) this module's messages name; a command shows its flags instead.
STORAGE_FIELDS = ("storage.url", "storage.study")


def default_storage_url(run_dir: Path) -> str:
    """The SQLite URL of the study database in ``run_dir``."""
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


@dataclass(frozen=True)
class Heartbeat:
    """A running trial records a heartbeat every ``interval_s``; one silent for ``grace_s`` belongs
    to a dead worker: it is marked FAIL and its parameters are queued again (``max_retry`` times).
    The search takes both from its WorkerOptions, which check them."""

    interval_s: int
    grace_s: int
    max_retry: int = 3


# Two processes opening one new database at once both create its tables; the loser sees these.
_SCHEMA_RACE = ("UNIQUE constraint failed", "already exists")
SCHEMA_RACE_RETRIES = 3


def open_storage(url: str, *, heartbeat: Heartbeat | None = None, create: bool = True) -> RDBStorage:
    """Open an RDB storage; SQLite gets a lock timeout so several local workers can share it.
    With ``heartbeat``, trials run under ``study.optimize`` send heartbeats and stale ones are retried.
    ``create=False`` (show, report, export, resume) refuses an SQLite file that does not hold an Optuna
    storage yet, instead of creating one (Optuna writes its schema into whatever file it opens)."""
    if "://" not in url:
        raise StorageError(
            f"storage URL {mask_passwords(url)!r} is malformed; use e.g. sqlite:///runs/mystudy/study.db or "
            "postgresql://user:password@host:5432/dbname"
        )
    database = sqlite_file(url)
    if database is not None:
        _check_sqlite_file(database, create=create)
    url = _with_installed_driver(url)
    if heartbeat is not None:  # trials run on this storage (outside the catch_warnings below)
        # A retried trial is a copy of the failed one, its constraints included; the objective sets
        # them again (to the same value) and Optuna warns each time: noise, not news to the user.
        warnings.filterwarnings("ignore", message="The constraint value is ignored because this constraint",
                                category=UserWarning)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}
    for attempt in range(SCHEMA_RACE_RETRIES + 1):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and warn about it
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=engine_kwargs, **_heartbeat_kwargs(heartbeat))
        except Exception as exc:  # SQLAlchemy raises many types for bad or unreachable URLs
            reason = first_line(exc)
            chain = f"{exc} {exc.__cause__} {exc.__context__}"
            if attempt < SCHEMA_RACE_RETRIES and any(mark in chain for mark in _SCHEMA_RACE):
                time.sleep(0.2 * (attempt + 1))  # another process is creating the tables: use them
                continue
            break
    raise StorageError(mask_passwords(_open_failure(url, database=database, reason=reason, chain=chain)),
                       fields=STORAGE_FIELDS)


def _open_failure(url: str, *, database: Path | None, reason: str, chain: str) -> str:
    """The fix depends on the back end: a file's path and permissions, or a server and its driver."""
    if database is None:
        return (f"cannot open storage {url!r}: {reason}; check the URL, that the server is running "
                "and reachable, and that the driver is installed")
    if any(mark in chain for mark in _NOT_A_DATABASE):
        return _not_sqlite(database)
    return f"cannot open SQLite storage {database}: {reason}; check the path and its permissions, or pass another storage.url"


# What SQLite says of a file that is not a database, or one whose pages are damaged.
_NOT_A_DATABASE = ("file is not a database", "database disk image is malformed")
_SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_file(url: str) -> Path | None:
    """The database file an SQLite URL names; None for other back ends, in-memory databases and
    ``file:`` URIs (left to SQLite), and for URLs SQLAlchemy cannot parse (RDBStorage reports them)."""
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy.exc.ArgumentError and ValueError, depending on the malformation
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _check_sqlite_file(path: Path, *, create: bool) -> None:
    """Refuse, before SQLite or Optuna writes anything, a file that is not a study storage."""
    if path.is_dir():
        raise StorageError(f"SQLite storage {path} is a directory; give a database file, e.g. {path / 'study.db'}")
    exists = path.is_file() and path.stat().st_size > 0  # SQLite takes an empty file for a new database
    if not exists:
        if not create:
            raise StorageError(f"no study storage at {path}; run autoc search first or pass the right storage.url",
                               fields=STORAGE_FIELDS)
        if not path.parent.is_dir():
            raise StorageError(f"cannot create SQLite storage {path}: directory {path.parent} does not exist; "
                               "create it or pass another storage.url", fields=STORAGE_FIELDS)
        return
    with open(path, "rb") as file:
        if file.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
            raise StorageError(_not_sqlite(path), fields=STORAGE_FIELDS)
    _check_not_damaged(path)
    if not create and not _holds_optuna_tables(path):
        raise StorageError(f"{path} is an SQLite database but not an Optuna study storage (no studies table); "
                           "pass the storage.url of a search, or its run directory", fields=STORAGE_FIELDS)


def _holds_optuna_tables(path: Path) -> bool:
    """Whether ``path`` has Optuna's tables; a file SQLite cannot read is refused here."""
    try:
        return bool(_read_only(path, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'"))
    except sqlite3.DatabaseError as exc:
        if any(mark in str(exc) for mark in _NOT_A_DATABASE):
            raise StorageError(_not_sqlite(path), fields=STORAGE_FIELDS) from None
        raise StorageError(f"cannot read SQLite storage {path}: {exc}; check its permissions, or pass another storage.url",
                           fields=STORAGE_FIELDS) from None


def _check_not_damaged(path: Path) -> None:
    """Refuse a database whose pages are damaged (a sound header, a bad page in the middle) when it
    is opened, with the way to recover it, instead of a traceback at whichever read meets the page."""
    try:
        problems = [row[0] for row in _read_only(path, "PRAGMA quick_check(3)") if row[0] != "ok"]
    except sqlite3.DatabaseError as exc:
        if not any(mark in str(exc) for mark in _NOT_A_DATABASE):
            return  # locked, or a journal to roll back first: Optuna's own connection deals with it
        problems = [str(exc)]
    if problems:
        raise StorageError(damaged_message(path, " ".join(problems[0].split())[:160]),  # SQLite's is multi-line
                           fields=STORAGE_FIELDS)


def damaged_message(path: Path, reason: str) -> str:
    """The message for a damaged study database: how to recover it with sqlite3 (it names storage.url)."""
    return (f"study database {path} is damaged ({reason}); nothing was written to it: recover what SQLite can "
            f"still read into a new file with: sqlite3 \"{path}\" \".recover\" | sqlite3 new.db, then pass "
            "storage.url sqlite:///new.db (or restore a backup)")


def holds_a_study(path: Path) -> bool:
    """Whether the SQLite file ``path`` holds a study; False too when it cannot be read as a storage."""
    try:
        return bool(_read_only(path, "SELECT 1 FROM studies LIMIT 1"))
    except sqlite3.Error:
        return False


def _read_only(path: Path, sql: str) -> list:
    """Rows of ``sql`` on the SQLite file ``path`` opened read-only: nothing written, no journal created."""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
        return connection.execute(sql).fetchall()


def _not_sqlite(path: Path) -> str:
    return (f"{path} is not an SQLite database (or is damaged); nothing was written to it: restore it from a "
            "backup, or choose another storage.url or storage.study")


def _with_installed_driver(url: str) -> str:
    """SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; autoc depends on psycopg2
    (psycopg2-binary), so a bare URL uses it unless psycopg 3 is installed."""
    if not url.startswith("postgresql://"):
        return url
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _heartbeat_kwargs(heartbeat: Heartbeat | None) -> dict[str, Any]:
    if heartbeat is None:
        return {}
    return dict(
        heartbeat_interval=heartbeat.interval_s,
        grace_period=heartbeat.grace_s,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=heartbeat.max_retry),
    )


def retry_failed_trials(study: optuna.Study, *, max_retry: int = Heartbeat.max_retry, skip_attr: str) -> int:
    """Queue again the parameters of FAIL trials that no retry has taken up: a trial stopped by
    Ctrl-C or a full disk runs again on resume, as the heartbeat retries a killed worker's trial
    (at most ``max_retry`` times in a row, so one that always fails stops). Trials carrying the
    user attribute ``skip_attr`` (ended on purpose) are left. Returns how many were queued."""
    history = RetryHeartbeatStaleTrialCallback.retry_history
    trials = study.get_trials(deepcopy=False)
    queued = 0
    with warnings.catch_warnings():  # "experimental" in Optuna, as the heartbeat is
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = {number for t in trials for number in history(t)}
        queue = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        for trial in trials:
            if trial.state == optuna.trial.TrialState.FAIL and trial.number not in retried \
                    and not trial.user_attrs.get(skip_attr) and len(history(trial)) < max_retry:
                queue(study, trial)
                queued += 1
    return queued


def study_exists(storage: RDBStorage, name: str) -> bool:
    """Whether ``storage`` holds a study named ``name``."""
    return any(s.study_name == name for s in storage.get_all_studies())


def open_study(
    *,
    storage: RDBStorage,
    name: str,
    identity: Mapping[str, str],
    sampler: optuna.samplers.BaseSampler,
    directions: list[str],
    study_field: str = "storage.study",
) -> optuna.Study:
    """Create the study, or resume it when its stored identity (space, dataset, device) matches.
    ``study_field``: what the caller's options call the study name, for the refusal's message."""
    if not study_exists(storage, name):
        try:
            return _create_study(storage=storage, name=name, identity=identity, sampler=sampler, directions=directions)
        except optuna.exceptions.DuplicatedStudyError:
            pass  # another search on this study created it a moment ago: join it like a resume
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    stored = {k[len(IDENTITY_PREFIX):]: v for k, v in study.user_attrs.items() if k.startswith(IDENTITY_PREFIX)}
    for key, value in identity.items():
        if key in stored and stored[key] != value:
            raise StorageError(
                f"study {name!r} was created with {key} {stored[key]!r}, not {value!r}; "
                f"resume it with the same {key}, or pick a new {study_field} name", fields=(study_field,)
            )
    return study


def _create_study(*, storage, name, identity, sampler, directions) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, directions=directions)
    if len(directions) == len(METRIC_NAMES):
        with warnings.catch_warnings():  # stable in practice; the "experimental" label is noise for users
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(METRIC_NAMES))  # named objectives in optuna-dashboard
    for key, value in identity.items():
        study.set_user_attr(IDENTITY_PREFIX + key, value)
    return study
