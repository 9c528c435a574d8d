"""Optuna storage: the single source of truth of a study, and the identity check for resuming."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import optuna
from optuna.storages import RDBStorage

from autoc.errors import StorageError

IDENTITY_PREFIX = "autoc."


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def open_storage(url: str) -> RDBStorage:
    """Open an RDB storage; SQLite gets a lock timeout so several local workers can share it."""
    if "://" not in url:
        raise StorageError(
            f"storage URL {url!r} is malformed; use e.g. sqlite:///runs/mystudy/study.db or "
            "postgresql://user:password@host:5432/dbname"
        )
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as exc:  # SQLAlchemy raises many types for bad or unreachable URLs
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(
            f"cannot open storage {url!r}: {reason}; check the URL, that the server is running "
            "and reachable, and that the driver is installed"
        ) from None


def study_exists(storage: RDBStorage, name: str) -> bool:
    return any(s.study_name == name for s in storage.get_all_studies())


def open_study(
    *,
    storage: RDBStorage,
    name: str,
    identity: Mapping[str, str],
    sampler: optuna.samplers.BaseSampler,
    directions: list[str],
) -> optuna.Study:
    """Create the study, or resume it when its stored identity (space, dataset, device) matches."""
    if study_exists(storage, name):
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        stored = {k[len(IDENTITY_PREFIX):]: v for k, v in study.user_attrs.items() if k.startswith(IDENTITY_PREFIX)}
        for key, value in identity.items():
            if key in stored and stored[key] != value:
                raise StorageError(
                    f"study {name!r} was created with {key} {stored[key]!r}, not {value!r}; "
                    f"resume it with the same {key}, or pick a new --study name"
                )
        return study
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, directions=directions)
    for key, value in identity.items():
        study.set_user_attr(IDENTITY_PREFIX + key, value)
    return study
