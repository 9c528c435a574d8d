"""The report's figures as PNG bytes (matplotlib's object API, Agg canvas: no display, no global state)."""
from __future__ import annotations

import io
import math
from itertools import accumulate

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from autoc.candidate import Candidate
from autoc.report.baselines import Baseline
from autoc.report.breakdown import LatencyBreakdown
from autoc.report.summary import StudySummary

DPI = 110
PRECISION_COLOURS = {"fp32": "#7f7f7f", "int8": "#1f77b4", "": "#d62728"}
FEASIBLE, FRONT, CHOSEN, OVER = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"
LOG_SPAN = 20  # latencies spanning more than this factor get a log axis


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _precision_patches(labels: dict[str, str]) -> list[Patch]:
    return [Patch(color=PRECISION_COLOURS[precision], label=label) for precision, label in labels.items()]


def _best_so_far(records) -> list[float]:
    """Best feasible accuracy after each record; NaN (not drawn) before the first feasible one."""
    best, out = math.nan, []
    for r in records:
        if r.feasible and not r.accuracy <= best:
            best = r.accuracy
        out.append(best)
    return out


def pareto_png(summary: StudySummary, baselines: list[Baseline]) -> bytes:
    """Accuracy against predicted latency of every completed trial, with the baselines and the budget."""
    return png_bytes(pareto_figure(summary, baselines))


def pareto_figure(summary: StudySummary, baselines: list[Baseline]) -> Figure:
    """The figure ``pareto_png`` draws (its axes hold every point drawn)."""
    fig = Figure(figsize=(8, 5.5))
    ax = fig.add_subplot()
    _draw_trials(ax, summary)
    for b in baselines:
        ax.scatter([b.latency_ms], [b.accuracy], marker="D", s=40, c="black", zorder=3)
        ax.annotate(b.name, (b.latency_ms, b.accuracy), xytext=(5, -10), textcoords="offset points", fontsize=8)
    if baselines:
        ax.scatter([], [], marker="D", s=40, c="black", label="baselines")
    ax.axvline(summary.budget_ms, c=OVER, ls="--", lw=1.2, label=f"budget {summary.budget_ms:g} ms")
    latencies = [r.latency_ms for r in summary.records] + [b.latency_ms for b in baselines] + [summary.budget_ms]
    _latency_axis(ax, min(latencies), max(latencies))
    _accuracy_axis([ax], [r.accuracy for r in summary.records if r.feasible or r.accuracy > 0]
                   + [b.accuracy for b in baselines] + ([summary.best.accuracy] if summary.best else []))
    ax.set_xlabel(f"predicted latency on {summary.device} (ms)")
    ax.set_ylabel("accuracy (short KD fine-tune, validation split)")
    ax.set_title(f"{summary.name}: accuracy vs latency ({len(summary.records)} completed trials)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def _draw_trials(ax, summary: StudySummary) -> None:
    front = {r.number for r in summary.pareto}
    others = [r for r in summary.records if r.feasible and r.number not in front]
    ax.scatter([r.latency_ms for r in others], [r.accuracy for r in others], s=22, c=FEASIBLE, alpha=0.6,
               label="feasible (trained within budget)")
    over_trained = [r for r in summary.records if not r.feasible and r.accuracy > 0]
    if over_trained:
        ax.scatter([r.latency_ms for r in over_trained], [r.accuracy for r in over_trained], marker="x", c=OVER,
                   label="infeasible (over budget)")
    if summary.pareto:
        points = sorted(summary.pareto, key=lambda r: r.latency_ms)
        best_so_far = list(accumulate((r.accuracy for r in points), max))
        ax.step([r.latency_ms for r in points], best_so_far, where="post", c=FRONT, lw=1.2, alpha=0.8)
        ax.scatter([r.latency_ms for r in points], [r.accuracy for r in points], s=46, c=FRONT,
                   edgecolors="black", linewidths=0.6, zorder=3, label="Pareto front (accuracy, latency, size)")
    if summary.best is not None:
        ax.scatter([summary.best.latency_ms], [summary.best.accuracy], marker="*", s=260, c=CHOSEN,
                   edgecolors="black", zorder=4, label=f"chosen: trial {summary.best.number}")
    untrained = [r.latency_ms for r in summary.records if not r.feasible and r.accuracy <= 0]
    if untrained:
        # Over-budget trials are never trained (accuracy 0): a rug on the x axis keeps the y range readable.
        rug = blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter(untrained, [0.03] * len(untrained), marker="|", s=120, c=OVER, transform=rug,
                   label=f"over budget, not trained: {_trials(len(untrained))}")


def _trials(count: int) -> str:
    return f"{count} trial{'s' if count != 1 else ''}"


# Where the lowest and highest accuracy sit, as shares of the axis height: the bottom kept for the
# rug of over-budget trials (drawn in axes coordinates, below every point), the top for a marker's size.
LOWEST_AT, HIGHEST_AT = 0.12, 0.9


def _accuracy_axis(axes, accuracies) -> None:
    """Accuracy limits that hold every plotted point whole, above the rug: autoscaling leaves the
    extreme markers half outside (or under the rug) and ignores the rug altogether."""
    values = [a for a in accuracies if not math.isnan(a)]
    if not values:
        return
    low, high = min(values), max(values)
    span = (high - low) or 0.05 * abs(high) or 0.1
    total = span / (HIGHEST_AT - LOWEST_AT)
    for ax in axes:
        ax.set_ylim(low - LOWEST_AT * total, low + (1 - LOWEST_AT) * total)


def _latency_axis(ax, low: float, high: float) -> None:
    """Log scale when latencies span a wide range; explicit limits, as the rug takes no part in autoscaling."""
    if low > 0 and high / low > LOG_SPAN:
        ax.set_xscale("log")
        ax.set_xlim(low / 1.15, high * 1.15)
    else:
        _padded_xlim(ax, low, high)


def _padded_xlim(ax, low: float, high: float) -> None:
    # not clamped at 0: trial 0 (or the first minute) at the very edge showed only half its marker
    pad = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
    ax.set_xlim(low - pad, high + pad)


def progress_png(summary: StudySummary) -> bytes:
    """Accuracy of the trials by trial number and over time."""
    return png_bytes(progress_figure(summary))


def progress_figure(summary: StudySummary) -> Figure:
    """The figure ``progress_png`` draws (its axes hold every point drawn)."""
    fig = Figure(figsize=(11, 4.6))
    by_trial, by_time = fig.subplots(1, 2, sharey=True)
    _progress_panel(by_trial, [(r.number, r) for r in summary.records])
    by_trial.set_xlabel("trial number")
    by_trial.set_ylabel("accuracy")
    by_trial.set_title("search progress by trial")
    timed = [(summary.finished_s[r.number] / 60, r) for r in summary.records if r.number in summary.finished_s]
    _progress_panel(by_time, sorted(timed, key=lambda pair: pair[0]))
    by_time.set_xlabel("minutes since the first trial started")
    by_time.set_title("search progress over time")
    _accuracy_axis([by_trial, by_time], [r.accuracy for r in summary.records if r.feasible])
    handles, labels = by_trial.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, -0.04))
    return fig


def _progress_panel(ax, points) -> None:
    """Feasible trials' accuracy, over-budget trials as a rug, and the best feasible accuracy so far."""
    feasible = [(x, r) for x, r in points if r.feasible]
    over = [x for x, r in points if not r.feasible]
    ax.scatter([x for x, _ in feasible], [r.accuracy for _, r in feasible], s=18, c=FEASIBLE, label="feasible trial")
    if over:
        rug = blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter(over, [0.03] * len(over), marker="x", c=OVER, transform=rug,
                   label=f"over budget, not trained: {_trials(len(over))}")
    ax.step([x for x, _ in points], _best_so_far([r for _, r in points]), where="post", c=FRONT,
            label="best feasible so far")
    if points:  # the rug takes no part in autoscaling
        _padded_xlim(ax, min(x for x, _ in points), max(x for x, _ in points))
    ax.grid(alpha=0.3)


def policy_png(candidate: Candidate, *, title: str) -> bytes:
    """The candidate's keep ratio and weight bits per layer."""
    names = candidate.netspec().layer_names()
    layers = [candidate.policy.get(name) for name in names]
    fig = Figure(figsize=(max(8.0, 0.3 * len(names)), 6))
    keep_ax, bits_ax = fig.subplots(2, 1, sharex=True)
    x = range(len(names))
    keep_ax.bar(x, [p.keep_ratio for p in layers], color=FEASIBLE)
    keep_ax.set_ylim(0, 1.05)
    keep_ax.set_ylabel("channel keep ratio")
    keep_ax.set_title(title)
    bits_ax.bar(x, [p.weight_bits for p in layers], color=[PRECISION_COLOURS[p.precision] for p in layers])
    for i, p in enumerate(layers):
        bits_ax.annotate(str(p.weight_bits), (i, p.weight_bits), ha="center", va="bottom", fontsize=7)
    bits_ax.set_ylim(0, 36)
    bits_ax.set_ylabel("weight bits")
    bits_ax.legend(handles=_precision_patches({"fp32": "runs fp32", "int8": "runs int8"}), loc="lower right",
                   bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8, frameon=False)  # above the bars
    bits_ax.set_xticks(list(x), names, rotation=90, fontsize=8)
    for ax in (keep_ax, bits_ax):
        ax.grid(axis="y", alpha=0.3)
    return png_bytes(fig)


def breakdown_png(breakdown: LatencyBreakdown, *, stored_ms: float, device: str) -> bytes:
    """Predicted ms per unit of the chosen candidate, against the latency stored at search."""
    rows = breakdown.rows
    fig = Figure(figsize=(8, max(3.0, 0.32 * len(rows) + 1.2)))
    ax = fig.add_subplot()
    y = list(range(len(rows)))
    ax.barh(y, [r.ms for r in rows], color=[PRECISION_COLOURS[r.precision] for r in rows])
    for i, r in enumerate(rows):
        ax.annotate(f"{r.ms:.3f}", (max(r.ms, 0), i), xytext=(3, 0), textcoords="offset points", va="center",
                    fontsize=7)
    ax.set_yticks(y, [r.name for r in rows], fontsize=8)
    ax.invert_yaxis()  # network order, top to bottom
    ax.axvline(0, c="black", lw=0.6)
    labels = {"fp32": "fp32 block", "int8": "int8 block", "": "whole-network correction"}
    ax.legend(handles=_precision_patches(labels), loc="best", fontsize=8)
    ax.margins(x=0.12)  # room for the value labels
    ax.set_xlabel(f"predicted ms on {device}")
    ax.set_title(f"latency per block: sum {breakdown.total_ms:.3f} ms (stored at search: {stored_ms:.3f} ms)")
    ax.grid(axis="x", alpha=0.3)
    return png_bytes(fig)
