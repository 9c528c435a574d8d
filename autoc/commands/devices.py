"""`autoc devices`: every device profile a search can name, shipped with autoc or calibrated here.

    autoc devices [--runs-dir DIR]

One row per profile: its name (what --device takes), whether autoc ships it or it was calibrated
under RUNS_DIR/devices (a calibrated one replaces a shipped one of the same name), the space it
covers (host profiles measure any space's units on demand), where its times come from, and its
validation on held-out networks: the share predicted within +-10%, Kendall tau and their count.
Then one row per model table (autoc compress MODEL --device NAME; imported from a model's pack
under RUNS_DIR/devices/models), its validation on the pack's held-out compressed variants.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from autoc.commands._flags import option_flags


def register(sub: argparse._SubParsersAction) -> None:
    """Add `autoc devices` and its options."""
    p = sub.add_parser("devices", help="list the device profiles, shipped and calibrated", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="calibrated profiles live in RUNS_DIR/devices")
    p.set_defaults(handler=run, option_flags=option_flags(p))


HEADER = ("device", "kind", "space", "within 10%", "tau", "held out", "source")


def run(args: argparse.Namespace) -> int:
    """Print one row per profile, shipped and calibrated."""
    from autoc.latency.device import list_profiles

    from autoc.modelspace.pack import model_tables

    entries = list_profiles(args.runs_dir)
    rows = [_row(entry) for entry in entries] + [_model_row(*found) for found in model_tables(args.runs_dir)]
    widths = [max(len(str(r[i])) for r in [HEADER, *rows]) for i in range(len(HEADER) - 1)]
    for row in [HEADER, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    if not any(entry.kind == "calibrated" for entry in entries):
        print(f"no calibrated profiles under {args.runs_dir / 'devices'}; 'autoc calibrate --device NAME ...' makes one")
    return 0


def _model_row(path: Path, table, problem: str) -> tuple[str, ...]:
    if table is None:
        return path.parent.name, "model table", "?", "-", "-", "-", f"unreadable: {path} ({problem})"
    figures = table.validation
    share, tau = figures.get("within_10pct"), figures.get("kendall_tau")
    keep = " ".join(f"{k:g}" for k in table.keep_choices)
    return (table.device, "model table", f"{table.model} at {table.input_size} px",
            "-" if share is None else f"{100 * share:.1f}%", "-" if tau is None else f"{tau:.3f}",
            str(len(table.held_out_errors)), f"pack: {table.identity.get('cpu_model', '?')}, keep choices {keep}")


def _row(entry) -> tuple[str, ...]:
    from autoc.latency.profile import HOST

    name = entry.name if entry.threads in (None, 1) else f"{entry.name} (--threads {entry.threads})"
    kind = entry.kind + (" (replaced)" if entry.replaced else "")
    if entry.profile is None:
        return name, kind, "?", "-", "-", "-", f"unreadable: {entry.problem}"
    profile, figures = entry.profile, entry.profile.validation
    space = "any" if profile.device == HOST else profile.space.get("name") or "-"
    if len(profile.resolutions) > 1:  # a profile for a space that searches the input resolution
        space += f" at {'/'.join(map(str, profile.resolutions))} px"
    share, tau, held = figures.get("within_10pct"), figures.get("kendall_tau"), figures.get("n")
    source = figures.get("source_file") or profile.identity.cpu_model
    if figures.get("fit_networks"):
        source += f", fitted on {figures['fit_networks']}"
    return (name, kind, space, "-" if share is None else f"{100 * share:.1f}%", "-" if tau is None else f"{tau:.3f}",
            str(held or 0), f"{profile.source}: {source}")
