"""`autoc search --resume runs/<study>`: repeat the stored command, with any flag given overriding."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

from autoc.errors import StorageError
from autoc.search.options import FINALIST_FIELDS, SUPERNET_RECIPE_FIELDS, SearchOptions
from autoc.search.stored import open_stored_run

# Stored run options that map one to one onto SearchOptions fields.
_STORED = ("space", "dataset", "data_dir", "seed", "max_train", "max_val", "trials", "sampler",
           "finetune_steps", "teacher_steps", "supernet_steps", "batch_size", "device",
           *SUPERNET_RECIPE_FIELDS, *FINALIST_FIELDS)


def resume_options(run_dir: str | Path, *, storage: str | None, given: Mapping[str, Any]) -> SearchOptions:
    """Options of the study stored in ``run_dir`` (its study.db, or ``storage``), then ``given``
    (the flags the user passed) on top. Identity checks happen later, as for any search."""
    run_dir = Path(run_dir)
    stored = open_stored_run(run_dir, storage=storage)
    recorded = stored.run_options
    if not recorded:
        raise StorageError(
            f"study {stored.name!r} in {run_dir} predates --resume (no stored options); "
            f"repeat the original command with --study {stored.name} instead"
        )
    values: dict[str, Any] = {key: recorded[key] for key in _STORED if key in recorded}
    if "budget_mj" in stored.identity:
        values["budget_mj"] = float(stored.identity["budget_mj"])
    values.update(budget_ms=stored.budget_ms, study=stored.name, storage=storage, runs_dir=run_dir.resolve().parent)
    known = {f.name for f in fields(SearchOptions)}
    values.update({key: value for key, value in given.items() if key in known and value is not None})
    return SearchOptions(**values)
