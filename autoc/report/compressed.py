"""`autoc report` of an `autoc compress` study: its trials' accuracy against predicted latency, with
the original model and each budget's chosen policy marked, and the per-budget table (a page of
its own: the search report's Pareto front, space policy and block breakdown describe autoc's
own networks)."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from matplotlib.figure import Figure

from autoc.errors import StorageError
from autoc.files import write_bytes_atomic
from autoc.modelspace.driver import Chosen
from autoc.modelspace.stored import StoredCompress
from autoc.report.build import PAGE, PLOT_NAMES, ReportFiles, _check_target
from autoc.report.page import STYLE, Plot, _figure, _table
from autoc.report.plots import CHOSEN, FEASIBLE, OVER, png_bytes


def write_compress_report(study: StoredCompress, *, out_dir: Path | None = None, force: bool = False) -> ReportFiles:
    """Render the page in memory, then write it and its plot (bad input leaves an old report untouched)."""
    out = Path(out_dir) if out_dir is not None else study.run_dir / "report"
    _check_target(out, force=force)
    tuned = [t for t in study.trials if t.accuracy is not None]
    plot = Plot("pareto", f"Accuracy (after the distillation fine-tune) vs predicted latency of the {len(tuned)} "
                "fine-tuned trials; dashed lines are the budgets, rings each budget's chosen trial, the star the "
                "original model.", png_bytes(trials_figure(study)))
    notes = []
    untuned = len(study.trials) - len(tuned)
    if untuned:
        notes.append(f"{untuned} trial(s) predicted over every budget were never fine-tuned and are not drawn.")
    page = _page(study, plot, notes)
    try:
        out.mkdir(parents=True, exist_ok=True)
        image = write_bytes_atomic(out / f"{plot.name}.png", plot.png)
        for stale in set(PLOT_NAMES) - {plot.name}:  # from a replaced report
            (out / f"{stale}.png").unlink(missing_ok=True)
        page_path = write_bytes_atomic(out / PAGE, page.encode("utf-8"))  # last: its presence means a whole report
    except OSError as exc:
        raise StorageError(f"cannot write the report to {out}: {exc.strerror}; pass a writable out_dir",
                           fields=("out_dir",)) from None
    return ReportFiles(page=page_path, images=(image,), notes=tuple(notes))


def trials_figure(study: StoredCompress) -> Figure:
    """Every fine-tuned trial, the original model, each budget and its chosen trial."""
    result = study.result
    fig = Figure(figsize=(8, 5.5))
    ax = fig.add_subplot()
    tuned = [t for t in study.trials if t.accuracy is not None]
    ax.scatter([t.predicted_ms for t in tuned], [t.accuracy for t in tuned], s=22, c=FEASIBLE, alpha=0.7,
               label=f"trials ({len(tuned)})")
    ax.scatter([result.original_predicted_ms], [result.original_accuracy], marker="*", s=160, c="black", zorder=4,
               label=f"original model ({result.original_predicted_ms:.3f} ms)")
    for i, chosen in enumerate(result.chosen):
        ax.axvline(chosen.budget_ms, c=OVER, ls="--", lw=1.0, label="budgets" if i == 0 else None)
    picked: dict[int, list[Chosen]] = {}  # budgets that chose the same trial share one ring
    for chosen in result.chosen:
        if chosen.trial is not None and not math.isnan(chosen.accuracy):
            picked.setdefault(chosen.trial, []).append(chosen)
    for i, (trial, budgets) in enumerate(sorted(picked.items())):
        first = budgets[0]
        ax.scatter([first.predicted_ms], [first.accuracy], s=140, facecolors="none", edgecolors=CHOSEN,
                   linewidths=2, zorder=5, label="chosen per budget" if i == 0 else None)
        ax.annotate(f"trial {trial}: {', '.join(f'{c.budget_ms:g}' for c in budgets)} ms",
                    (first.predicted_ms, first.accuracy), xytext=(6, -12), textcoords="offset points", fontsize=8)
    ax.set_xlabel(f"predicted latency, ms ({study.options.device})")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"compress study {study.name}: {study.options.model}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _page(study: StoredCompress, plot: Plot, notes: list[str]) -> str:
    result, options = study.result, study.options
    origin = " (trained here: no weights given)" if result.pretrained_here else ""
    items = [
        f"model <b>{escape(options.model)}</b>{escape(origin)}, device <b>{escape(options.device)}</b>, "
        f"dataset <b>{escape(options.dataset)}</b>, input {options.input_size} px",
        f"budgets: {', '.join(f'{b:g} ms' for b in options.budgets_ms)}"
        + (f", size {options.size_budget_kb:g} kB" if options.size_budget_kb is not None else ""),
        f"trials: {result.trials_total} completed ({sum(t.accuracy is not None for t in study.trials)} fine-tuned)",
        f"original model: accuracy {result.original_accuracy:.4f}, {result.original_predicted_ms:.3f} ms predicted"
        + (f" for {escape(result.device)} (not measured here)" if result.original_measured_ms is None
           else f", {result.original_measured_ms:.3f} ms measured")
        + (f", {result.original_size_kb:.1f} kB" if result.original_size_kb is not None else ""),
        f"most compressed policy (the floor): {result.floor_ms:.3f} ms predicted",
    ]
    if result.unprunable:
        items.append("left unpruned: " + ", ".join(f"{escape(k)} ({escape(v)})" for k, v in
                                                   sorted(result.unprunable.items())))
    parts = [
        f"<h1>autoc report: compress study {escape(study.name)}</h1>",
        "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>",
        *(f'<p class="note">{escape(note)}</p>' for note in notes),
        "<h2>Accuracy vs latency</h2>",
        _figure(plot),
        "<h2>Chosen policy per budget</h2>",
        _table(("budget ms", "trial", "accuracy", "ONNX accuracy", "predicted ms", "measured ms", "size kB",
                "mean keep", "int8 layers", "policy file"), [_row(c, result.floor_ms) for c in result.chosen], table_id="budgets"),
    ]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>autoc report: {escape(study.name)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(p for p in parts if p)
        + f"\n<footer><p>Generated by autoc report, {generated}.</p></footer>\n</body>\n</html>\n"
    )


def _row(chosen: Chosen, floor_ms: float) -> tuple:
    budget = f"{chosen.budget_ms:g}"
    if chosen.below_floor:
        return (budget, f"none: below the floor {floor_ms:.3f} ms", "", "", "", "", "", "", "", "")
    if chosen.trial is None and math.isnan(chosen.accuracy):
        return (budget, "none fits yet", "", "", "", "", "", "", "", "")
    size = f"{chosen.size_kb:.1f}" if chosen.size_kb is not None else ""
    if chosen.trial is None:
        return (budget, "original model fits", f"{chosen.accuracy:.4f}", "", f"{chosen.predicted_ms:.3f}", "", size,
                "1.00", 0, "")
    return (budget, chosen.trial, f"{chosen.accuracy:.4f}",
            f"{chosen.onnx_accuracy:.4f}" if chosen.onnx_accuracy is not None else "",
            f"{chosen.predicted_ms:.3f}", f"{chosen.measured_ms:.3f}" if chosen.measured_ms is not None else "", size,
            f"{chosen.mean_keep:.2f}", chosen.int8_layers, chosen.policy_path.name if chosen.policy_path else "")
