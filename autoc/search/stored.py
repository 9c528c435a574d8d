"""Open a stored study read-only, from its run directory or its storage URL alone.

`autoc show`, `autoc export` and `autoc report` start here: the storage is the source of
truth, the run directory holds the artifacts beside it (weights, best_policy.json).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna

from autoc.data.preprocessing import Preprocessing
from autoc.errors import StorageError, mask_passwords
from autoc.evaluate.recipe import scratch_recipe
from autoc.search.finalists import chosen_finalist, stored_finalists
from autoc.search.options import stored_to_dict
from autoc.search.results import TrialRecord, best_record, completed_records
from autoc.run_paths import resolve_runs_dir, resolve_stored
from autoc.space.loader import SUFFIXES
from autoc.search.storage import IDENTITY_PREFIX, STORAGE_FIELDS, default_storage_url, open_storage

PREPROCESSING_ATTR = "autoc_preprocessing"  # how raw images become inputs; written by the search driver


@dataclass(frozen=True)
class StoredRun:
    """An opened stored study with its run directory and the identity recorded at creation."""

    name: str
    run_dir: Path
    study: optuna.Study
    identity: dict[str, str]  # space, dataset, device, budget_ms as stored at creation

    @property
    def budget_ms(self) -> float:
        return float(self.identity["budget_ms"])

    @property
    def budgets_ms(self) -> tuple[float, ...]:
        """Every budget of the search, smallest first: a sweep's as stored, else the one budget_ms
        (studies from before sweeps stored none)."""
        try:
            stored = tuple(sorted(float(b) for b in self.run_options.get("budgets_ms") or ()))
        except (TypeError, ValueError):
            stored = ()
        return stored or (self.budget_ms,)

    @property
    def space_name(self) -> str:
        return self.identity["space"].split(":", 1)[0]

    @property
    def device(self) -> str:
        return self.identity.get("device", "host")

    @property
    def run_options(self) -> dict:
        """How `autoc search` loaded the data (dataset, data_dir, seed, max_train, max_val,
        space, runs_dir); empty for studies written before this was recorded."""
        return dict(self.study.user_attrs.get("autoc_run_options", {}))

    @property
    def preprocessing(self) -> Preprocessing | None:
        """How the search made its inputs from raw images; None for studies written before this was recorded."""
        stored = self.study.user_attrs.get(PREPROCESSING_ATTR)
        return None if stored is None else Preprocessing.from_dict(stored)

    @property
    def runs_dir(self) -> Path:
        """Where the search's shared device profiles and caches are now: the runs dir recorded
        (relative to the run directory), else the run directory's parent."""
        return resolve_runs_dir(self.run_options.get("runs_dir"), run_dir=self.run_dir)

    @property
    def space_option(self) -> str:
        """The space the search was run in, as ``load_space`` reads it: a shipped space's name, or
        the path of the space file (the copy in the run directory, for studies that keep one)."""
        given = str(self.run_options.get("space") or self.space_name)
        if Path(given).suffix in SUFFIXES or "/" in given or "\\" in given:
            return str(resolve_stored(given, run_dir=self.run_dir))
        return given

    def records(self) -> list[TrialRecord]:
        """The study's completed trials; their weights are the paths in the run directory as it is now."""
        return completed_records(self.study, budget_ms=self.budget_ms, run_dir=self.run_dir)

    def chosen(self, records: list[TrialRecord]) -> TrialRecord | None:
        """The record the search chose: its best finalist when it ran the finalist stage (with the
        stored recipe), else the most accurate feasible estimate."""
        options = self.run_options
        finalists = stored_to_dict(options).get("finalists") or {}
        if finalists.get("count"):
            recipe = scratch_recipe(steps=int(finalists["steps"]), batch_size=int(options.get("batch_size", 32)),
                                     seed=int(options.get("seed", 0)), augment=bool(finalists.get("augment")))
            chosen = chosen_finalist(records, stored_finalists(self.study, config=recipe, run_dir=self.run_dir))
            if chosen is not None:
                return chosen
        return best_record(records)


def open_stored_run(target: str | Path, *, storage: str | None = None, study: str | None = None) -> StoredRun:
    """`target` is a run directory (runs/<study>, holding study.db); with `storage` given it
    may be just the study name (for PostgreSQL studies whose run directory is elsewhere).
    Errors name ``storage`` and ``study`` as the search options do: storage.url, storage.study."""
    run_dir = Path(target)
    name = study or run_dir.name
    own_database = storage is None
    if storage is None:
        db = run_dir / "study.db"
        if not db.is_file():
            raise StorageError(
                f"{run_dir} holds no study.db; give the run directory of a search (runs/<study>), "
                "or the study name and its storage.url", fields=STORAGE_FIELDS
            )
        storage = default_storage_url(run_dir)
    rdb = open_storage(storage, create=False)  # a read-only command must not create a storage
    names = [s.study_name for s in rdb.get_all_studies()]
    if name not in names and study is None and own_database and len(names) == 1:
        name = names[0]  # a renamed run directory: its own study.db holds one study, whatever the folder is called
    if name not in names:
        raise StorageError(f"storage {mask_passwords(storage)} has no study {name!r}; it has {sorted(names) or 'none'}")
    loaded = optuna.load_study(study_name=name, storage=rdb)
    identity = {k[len(IDENTITY_PREFIX):]: str(v) for k, v in loaded.user_attrs.items() if k.startswith(IDENTITY_PREFIX)}
    if "budget_ms" not in identity or "space" not in identity:
        raise StorageError(f"study {name!r} in {mask_passwords(storage)} was not created by autoc search (no autoc.* identity attributes)")
    recorded = loaded.user_attrs.get("autoc_run_options", {}).get("run_dir")
    if not own_database and recorded and not run_dir.is_dir():
        run_dir = Path(recorded)  # opened by name from a server storage: the run directory the search used
    return StoredRun(name=name, run_dir=run_dir, study=loaded, identity=identity)
