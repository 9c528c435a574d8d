"""The report's figures show every point whole, inside the axes, and say what their counts count."""
import dataclasses
import math

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from autoc.report.baselines import Baseline
from autoc.report.plots import pareto_figure, progress_figure
from autoc.report.summary import summarize
from autoc.search.stored import open_stored_run


@pytest.fixture(scope="module")
def summary(stored_study):
    return summarize(open_stored_run(stored_study.run_dir))


def _points_outside(fig) -> list[str]:
    """Every marker not wholly inside its axes, and every line vertex outside them (display pixels)."""
    FigureCanvasAgg(fig).draw()
    outside = []
    for ax in fig.axes:
        box = ax.get_window_extent()
        for collection in ax.collections:
            shown = collection.get_offset_transform().transform(collection.get_offsets())
            sizes = np.broadcast_to(collection.get_sizes(), (len(shown),))
            for (x, y), size in zip(shown, sizes):
                r = math.sqrt(size) / 2 * fig.dpi / 72  # marker radius in pixels
                if not (box.x0 + r - 0.5 <= x <= box.x1 - r + 0.5 and box.y0 + r - 0.5 <= y <= box.y1 - r + 0.5):
                    outside.append(f"{collection.get_label()!r} at {x:.0f},{y:.0f} (axes {box.bounds})")
        for line in ax.lines:
            for x, y in line.get_transform().transform(line.get_xydata()):
                if not (math.isnan(x) or math.isnan(y)) and not (box.x0 - 0.5 <= x <= box.x1 + 0.5
                                                                 and box.y0 - 0.5 <= y <= box.y1 + 0.5):
                    outside.append(f"line {line.get_label()!r} at {x:.0f},{y:.0f}")
    return outside


def _with_extremes(summary):
    """The study with a finalist as the chosen trial, trained well above every estimate, and a
    feasible trial just above zero: the highest and lowest points of any plot."""
    best = dataclasses.replace(summary.best, accuracy=max(r.accuracy for r in summary.records) + 0.08,
                               estimate=summary.best.accuracy)
    low = next(r for r in summary.records if r.feasible and r.number != best.number)
    records = [dataclasses.replace(r, accuracy=0.02) if r.number == low.number else r for r in summary.records]
    return dataclasses.replace(summary, best=best, records=tuple(records))


def test_the_accuracy_plot_shows_every_trial_baseline_and_the_chosen_one_whole(summary):
    baselines = [Baseline(name="reference", accuracy=0.99, latency_ms=summary.budget_ms * 0.5, size_bytes=1)]
    for drawn in (summary, _with_extremes(summary)):
        assert _points_outside(pareto_figure(drawn, baselines)) == []
        assert _points_outside(pareto_figure(drawn, [])) == []


def test_the_progress_plot_shows_every_trial_and_the_best_so_far_whole(summary):
    for drawn in (summary, _with_extremes(summary)):
        assert _points_outside(progress_figure(drawn)) == []


def test_the_lowest_trial_sits_above_the_rug_of_over_budget_trials(summary):
    fig = progress_figure(_with_extremes(summary))
    ax = fig.axes[0]
    lowest = min(r.accuracy for r in summary.records if r.feasible and r.accuracy > 0.0)
    y0, y1 = ax.get_ylim()
    assert (min(lowest, 0.02) - y0) / (y1 - y0) > 0.1  # the rug is drawn at 3% of the height


def test_the_counts_in_the_legends_say_what_they_count(summary):
    over = sum(not r.feasible for r in summary.records)
    labels = [t.get_text() for t in pareto_figure(summary, []).axes[0].get_legend().get_texts()]
    assert f"over budget, not trained: {over} trials" in labels
    labels = [t.get_text() for t in progress_figure(summary).legends[0].get_texts()]
    assert f"over budget, not trained: {over} trials" in labels
