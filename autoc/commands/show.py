"""`autoc show`: summarise a stored study (trials by state, Pareto front, best under budget)."""
from __future__ import annotations

import argparse

from autoc.commands._flags import option_flags


def register(sub: argparse._SubParsersAction) -> None:
    """Add `autoc show` and its options."""
    p = sub.add_parser("show", help="summarise a study from its storage alone")
    add_study_arguments(p)
    p.set_defaults(handler=run, option_flags=option_flags(p))


def add_study_arguments(p: argparse.ArgumentParser) -> None:
    """The ways to name a stored study; `autoc report` takes the same. --storage and --study store
    into storage.url and storage.study, the names the library's storage errors use."""
    p.add_argument("target", help="run directory runs/<study> (holding study.db), or the study name with --storage")
    p.add_argument("--storage", dest="storage.url", default=None, help="Optuna storage URL, e.g. postgresql://user:pw@host/db")
    p.add_argument("--study", dest="storage.study", default=None, help="study name in the storage (default: the target's last part)")


def run(args: argparse.Namespace) -> int:
    """Print the summary of a stored study."""
    from pathlib import Path

    from autoc.modelspace.driver import stored_result
    from autoc.report.summary import format_summary, summarize
    from autoc.search.stored import open_stored_run

    if getattr(args, "storage.url") is None and (compressed := stored_result(Path(args.target))) is not None:
        from autoc.commands.compress import print_summary

        print_summary(compressed)  # a compress run: the summary its command printed
        return 0
    stored = open_stored_run(args.target, storage=getattr(args, "storage.url"), study=getattr(args, "storage.study"))
    print(format_summary(summarize(stored)))
    return 0
