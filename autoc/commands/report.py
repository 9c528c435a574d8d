"""`autoc report`: an HTML page with plots (Pareto front, policy, latency per block, progress); for an
`autoc compress` study, its trials, original model and chosen policy per budget."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoc.commands._flags import option_flags
from autoc.commands.show import add_study_arguments


def register(sub: argparse._SubParsersAction) -> None:
    """Add `autoc report` and its options."""
    p = sub.add_parser("report", help="write an HTML report with plots of a stored study")
    add_study_arguments(p)
    p.add_argument("--out", dest="out_dir", type=Path, default=None, help="output directory (default runs/<study>/report)")
    p.add_argument("--force", action="store_true", help="replace an existing report in the output directory")
    p.set_defaults(handler=run, option_flags=option_flags(p))


def run(args: argparse.Namespace) -> int:
    """Write the HTML report of a stored search or compress study and print where it is."""
    from autoc.modelspace.stored import is_compress_run

    if getattr(args, "storage.url") is None and is_compress_run(Path(args.target)):
        from autoc.modelspace.stored import open_compress_study
        from autoc.report.compressed import write_compress_report

        files = write_compress_report(open_compress_study(Path(args.target)), out_dir=args.out_dir, force=args.force)
    else:
        files = _search_report(args)
    for note in files.notes:
        print(f"autoc: note: {note}", file=sys.stderr)
    print(f"report: {files.page} ({len(files.images)} plots: {', '.join(p.name for p in files.images)})")
    return 0


def _search_report(args: argparse.Namespace):
    from autoc.errors import StorageError
    from autoc.report.build import write_report
    from autoc.search.stored import open_stored_run

    stored = open_stored_run(args.target, storage=getattr(args, "storage.url"), study=getattr(args, "storage.study"))
    if args.out_dir is None and not stored.run_dir.is_dir():
        raise StorageError(
            f"study {stored.name!r} has no run directory at {stored.run_dir}; give --out DIR for the report "
            "(or the study's run directory as the target)"
        )
    return write_report(stored, out_dir=args.out_dir, force=args.force)
