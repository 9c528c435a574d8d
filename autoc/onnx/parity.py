"""When an exported model is no longer the model the search scored: the limits every export is held to,
and the one-line messages that say how it departs."""
from __future__ import annotations

# Beyond these an export fails its check: the estimate must survive the trip to the runtime.
ACCURACY_DRIFT_POINTS = 1.0
LATENCY_DRIFT = 0.10


def accuracy_drift(*, exported: float, scored: float, what: str, detail: str = "") -> str | None:
    """A line when ``exported`` accuracy (0-1) is over ACCURACY_DRIFT_POINTS from ``scored``; else None."""
    gap = 100.0 * (exported - scored)
    if abs(gap) <= ACCURACY_DRIFT_POINTS:
        return None
    return (f"{what} scores {gap:+.2f} points against the fake-quant model the search scored "
            f"(limit {ACCURACY_DRIFT_POINTS:g} point{'; ' + detail if detail else ''})")


def latency_drift(*, measured_ms: float, predicted_ms: float, what: str, spread: float | None = None,
                  noisy: bool = False) -> str | None:
    """A line when ``measured_ms`` is over LATENCY_DRIFT from ``predicted_ms``; else None. ``spread``:
    how far the measurement's sessions disagree ((max - min) / mean), shown as its own noise."""
    error = measured_ms / predicted_ms - 1.0
    if abs(error) <= LATENCY_DRIFT:
        return None
    if spread is None:
        noise = "one session: measure again to see its noise"
    elif noisy:
        noise = f"NOISY: its sessions differ by {100 * spread:.1f}%, measure again on a quieter machine"
    else:
        noise = f"its sessions agree within {100 * spread:.1f}%"
    return (f"{what} runs {measured_ms:.3f} ms, {100 * error:+.1f}% from the predicted {predicted_ms:.3f} ms "
            f"(limit ±{100 * LATENCY_DRIFT:g}%; {noise})")
