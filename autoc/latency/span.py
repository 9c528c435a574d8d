"""The latencies a space's candidates predict on a device, fastest to slowest: what a budget must
fall between to choose among them."""
from __future__ import annotations

from dataclasses import dataclass

from autoc.latency.blocks import network_units
from autoc.latency.model import LatencyModel, LookupTableLatencyModel
from autoc.space import SearchSpace


@dataclass(frozen=True, kw_only=True)
class LatencySpan:
    """The fastest and slowest predicted latency of a space on a device, in ms; ``slowest_ms`` is
    None where the model could not price the largest candidates without measuring them."""

    fastest_ms: float
    slowest_ms: float | None

    def describe(self) -> str:
        """``8.27-29.9 ms`` (or ``from 8.27 ms`` when the slowest is unknown)."""
        if self.slowest_ms is None:
            return f"from {self.fastest_ms:.3g} ms"
        return f"{self.fastest_ms:.3g}-{self.slowest_ms:.3g} ms"


def latency_span(space: SearchSpace, latency: LatencyModel, *, num_classes: int | None = None) -> LatencySpan:
    """The predicted latency of the space's cheapest and slowest candidates under an additive model
    (``SearchSpace.minimal_candidates`` / ``maximal_candidates``): exact where the units' times add
    up (profiles fitted from whole networks), close where the correction reorders a few."""
    smallest = [(c.netspec(), c.policy) for c in space.minimal_candidates(num_classes=num_classes)]
    fastest = min(latency.predict(spec, policy) for spec, policy in smallest)  # a host model measures these
    largest = [(c.netspec(), c.policy) for c in space.maximal_candidates(num_classes=num_classes)]
    pricing = latency
    if isinstance(latency, LookupTableLatencyModel):  # a host model would measure every large unit it lacks
        try:
            pricing = latency.without_measuring(
                u for spec, policy in smallest + largest for u in network_units(spec, policy))
        except ValueError:  # no unit measured to price the others by
            return LatencySpan(fastest_ms=fastest, slowest_ms=None)
    slowest = max(pricing.predict(spec, policy) for spec, policy in largest)
    return LatencySpan(fastest_ms=fastest, slowest_ms=max(slowest, fastest))
