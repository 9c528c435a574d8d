"""How well predicted latencies match measured ones: the figures a profile records.

The figure that counts is the share of held-out networks predicted within +-10 % of their
measured latency; MAPE, Kendall tau (rank agreement, what a search needs) and the worst
cases stand beside it.
"""
from __future__ import annotations

import statistics
from typing import Any, Sequence

import numpy as np

WORST_CASES = 5


def validation_figures(
    *, measured: Sequence[float], predicted: Sequence[float], names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Share within +-10 %, MAPE, Kendall tau, the worst cases, and every (measured, predicted) pair."""
    names = list(names) if names is not None else [f"net{i}" for i in range(len(measured))]
    errors = [(p - m) / m for m, p in zip(measured, predicted)]
    rows = [
        {"name": n, "measured_ms": round(m, 4), "predicted_ms": round(p, 4), "error_pct": round(100 * e, 2)}
        for n, m, p, e in zip(names, measured, predicted, errors)
    ]
    return {
        "n": len(errors),
        "within_10pct": sum(abs(e) <= 0.10 for e in errors) / len(errors) if errors else None,
        "mape_pct": 100 * statistics.fmean(abs(e) for e in errors) if errors else None,
        "kendall_tau": kendall_tau(measured, predicted),
        "worst": sorted(rows, key=lambda r: -abs(r["error_pct"]))[:WORST_CASES],
        "networks": rows,
    }


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b (ties-aware rank agreement); None when undefined."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < 2:
        return None
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    both = (dx != 0) & (dy != 0)
    concordant_minus_discordant = float(np.sum(dx[both] * dy[both]))
    pairs_x, pairs_y = float(np.sum(dx != 0)), float(np.sum(dy != 0))
    denominator = (pairs_x * pairs_y) ** 0.5
    return concordant_minus_discordant / denominator if denominator else None


def format_figures(figures: dict[str, Any], *, title: str) -> str:
    """A few readable lines: the headline figures and the worst cases."""
    tau = figures.get("kendall_tau")
    lines = [
        f"{title}: {figures['n']} held-out networks, {100 * figures['within_10pct']:.1f}% within +-10%, "
        f"MAPE {figures['mape_pct']:.2f}%, Kendall tau {'n/a' if tau is None else f'{tau:.3f}'}"
    ]
    if "session_spread_median_pct" in figures:
        lines.append(
            f"  measurement noise: two sessions of a network differ by a median "
            f"{figures['session_spread_median_pct']:.1f}% (90th percentile {figures['session_spread_p90_pct']:.1f}%)"
            + (" -- NOISY: calibrate again on a quieter machine" if figures.get("noisy") else "")
        )
    for row in figures.get("worst", []):
        lines.append(
            f"  worst: {row['name']:<12} measured {row['measured_ms']:9.3f} ms  "
            f"predicted {row['predicted_ms']:9.3f} ms  error {row['error_pct']:+6.1f}%"
        )
    return "\n".join(lines)
