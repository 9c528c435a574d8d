"""`autoc report`: a stored study -> PNGs and one self-contained HTML page beside them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoc.candidate import Candidate
from autoc.errors import StorageError
from autoc.files import HTML, PNG, check_replaceable, write_bytes_atomic
from autoc.report.baselines import FILENAME as BASELINES_FILENAME
from autoc.report.baselines import load_baselines
from autoc.report.breakdown import latency_breakdown
from autoc.report.page import Plot, render_page
from autoc.report.plots import breakdown_png, pareto_png, policy_png, progress_png
from autoc.report.summary import summarize
from autoc.search.stored import StoredRun

PAGE = "report.html"
PLOT_NAMES = ("pareto", "progress", "policy", "latency")


@dataclass(frozen=True)
class ReportFiles:
    """What a report wrote: the page, its plot images, and notes on what it could not show."""

    page: Path
    images: tuple[Path, ...]
    notes: tuple[str, ...]  # what the page could not show, and why


def write_report(run: StoredRun, *, out_dir: Path | None = None, force: bool = False) -> ReportFiles:
    """Render everything in memory first, then write: bad input leaves an old report untouched."""
    out = Path(out_dir) if out_dir is not None else run.run_dir / "report"
    _check_target(out, force=force)
    summary = summarize(run)
    baselines = load_baselines(run.run_dir / BASELINES_FILENAME)
    plots = [
        Plot("pareto", "Accuracy vs predicted latency of every completed trial; the dashed line is the budget.",
             pareto_png(summary, baselines)),
        Plot("progress", "Best feasible accuracy so far, by trial and over wall-clock time.", progress_png(summary)),
    ]
    notes = []
    if not baselines:
        notes.append(f"No baselines drawn: {run.run_dir / BASELINES_FILENAME} does not exist.")
    chosen = Candidate.from_dict(summary.best.candidate) if summary.best is not None else None
    breakdown = None
    if chosen is not None:
        plots.append(Plot("policy", f"Per-layer policy of trial {summary.best.number}: keep ratio and weight bits.",
                          policy_png(chosen, title=f"trial {summary.best.number}: per-layer compression policy")))
        breakdown = latency_breakdown(chosen, device=summary.device, runs_dir=run.runs_dir)
        if breakdown.unavailable:
            notes.append(f"No latency breakdown: {breakdown.unavailable}")
        else:
            plots.append(Plot("latency", f"Predicted latency per block of trial {summary.best.number} "
                              f"(profile {breakdown.profile}).",
                              breakdown_png(breakdown, stored_ms=summary.best.latency_ms, device=summary.device)))
    page = render_page(summary, plots=plots, chosen=chosen, breakdown=breakdown, baselines=baselines, notes=notes)
    try:
        out.mkdir(parents=True, exist_ok=True)
        images = tuple(write_bytes_atomic(out / f"{plot.name}.png", plot.png) for plot in plots)
        for stale in set(PLOT_NAMES) - {plot.name for plot in plots}:  # from a replaced report
            (out / f"{stale}.png").unlink(missing_ok=True)
        page_path = write_bytes_atomic(out / PAGE, page.encode("utf-8"))  # last: its presence means a whole report
    except OSError as exc:
        raise StorageError(f"cannot write the report to {out}: {exc.strerror}; pass a writable out_dir",
                           fields=("out_dir",)) from None
    return ReportFiles(page=page_path, images=images, notes=tuple(notes))


def _check_target(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise StorageError(f"out_dir {out} is a file, not a directory; give a directory for the report",
                           fields=("out_dir",))
    # the plots are replaced (or removed when stale) along with the page, so they are checked too
    check_replaceable({out / PAGE: HTML, **{out / f"{name}.png": PNG for name in PLOT_NAMES}})
    if (out / PAGE).exists() and not force:
        raise StorageError(f"{out / PAGE} already exists; pass force to replace it, or another out_dir",
                           fields=("force", "out_dir"))


