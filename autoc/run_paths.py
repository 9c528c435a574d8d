"""Paths a study stores (trial and finalist weights, a copied space file, the runs dir, a compress
run's outputs), written relative to its run directory and resolved against where that directory
is now: a copied or moved ``runs/<study>`` reads its own files, never the original's.

Studies from before stored absolute paths; they still open: an absolute path that exists is
used, else the longest tail of it that exists under the run directory (``.../old/runs/s/weights/
trial-3.pt`` is found as ``weights/trial-3.pt`` in the copy).
"""
from __future__ import annotations

import os
from pathlib import Path

PARENT = ".."  # the runs dir as stored when it holds the run directory (the default layout)


def stored_path(path: str | os.PathLike[str], *, run_dir: str | os.PathLike[str]) -> str:
    """``path`` as a study stores it: relative to ``run_dir`` (with ``/``) when inside it, else
    absolute (a user's data elsewhere stays where it is)."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(os.path.abspath(run_dir)).as_posix()
    except ValueError:
        return str(absolute)


def resolve_stored(stored: str | os.PathLike[str], *, run_dir: str | os.PathLike[str]) -> Path:
    """Where a stored path is now: a relative one under ``run_dir`` as it is now; an absolute one
    (older studies) itself when it exists, else its longest tail that exists under ``run_dir``,
    else itself (so that a message names the path the study recorded)."""
    path = Path(stored)
    base = Path(os.path.abspath(run_dir))
    if not path.is_absolute():
        return base / path
    if path.exists():
        return path
    parts = path.parts[1:]
    for start in range(len(parts)):
        tail = base.joinpath(*parts[start:])
        if tail.exists():
            return tail
    return path


def stored_runs_dir(runs_dir: str | os.PathLike[str], *, run_dir: str | os.PathLike[str]) -> str:
    """The runs dir (shared device profiles and caches) as a study stores it: ``..`` when it holds
    the run directory, so a runs dir copied or moved with its studies is found; else absolute."""
    runs_dir, run_dir = os.path.abspath(runs_dir), os.path.abspath(run_dir)
    return PARENT if os.path.dirname(run_dir) == runs_dir else runs_dir


def resolve_runs_dir(stored: str | os.PathLike[str] | None, *, run_dir: str | os.PathLike[str]) -> Path:
    """Where the runs dir of a study in ``run_dir`` is now: a relative one (``..``) against
    ``run_dir``; an absolute one (older studies, or a run directory outside its runs dir) when it
    still exists, else the run directory's parent, as when nothing was stored."""
    base = Path(os.path.abspath(run_dir))
    if stored is None or str(stored) == "":
        return base.parent
    path = Path(stored)
    if not path.is_absolute():
        return Path(os.path.normpath(base / path))
    return path if path.is_dir() else base.parent


def budget_suffix(budget_ms: float, *, several: bool) -> str:
    """What the files chosen for one budget of several add to their names (``best_policy-12ms.json``,
    ``best_weights-12ms.pt``); nothing for a run with one budget (``best_policy.json``). One rule
    for `autoc search` and `autoc compress` sweeps."""
    return f"-{budget_ms:g}ms" if several else ""
