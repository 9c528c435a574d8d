"""An exported model timed on this host as calibration times a network, with its own noise shown:
what `autoc export` and `autoc compress` compare with a profile's prediction."""
from __future__ import annotations

from dataclasses import dataclass

from autoc.latency.calibrate import NETWORK_SESSIONS, NOISY_SESSION_SPREAD, session_means, session_spreads
from autoc.latency.measure import Measurement, measure_interleaved

LATENCY_WARMUP = 50
LATENCY_REPEATS = 400


@dataclass(frozen=True)
class LatencyCheck:
    """The exported model timed as calibration times a network: two interleaved sessions, each
    summarised by its latency figure (p10 of the kept runs); ``figure_ms`` is their mean."""

    sessions: tuple[Measurement, ...]

    @property
    def figure_ms(self) -> float:
        """Mean of the sessions' figures: what a profile's prediction stands for."""
        return session_means(self.sessions, networks=1)[0]

    @property
    def session_spread(self) -> float:
        """(slowest - fastest session) / mean: how far this one measurement can be trusted."""
        return session_spreads(self.sessions, networks=1)[0]

    @property
    def noisy(self) -> bool:
        """The sessions disagree beyond a quiet machine's (calibration's NOISY rule)."""
        return self.session_spread > NOISY_SESSION_SPREAD

    @property
    def p10_ms(self) -> float:
        """The fastest session's 10th percentile."""
        return min(m.p10_ms for m in self.sessions)

    @property
    def p90_ms(self) -> float:
        """The slowest session's 90th percentile."""
        return max(m.p90_ms for m in self.sessions)

    @property
    def repeats(self) -> int:
        """Timed runs over all sessions."""
        return sum(m.repeats for m in self.sessions)


def measure_exported(model_bytes: bytes, shape: tuple[int, int, int, int], *, threads: int = 1) -> LatencyCheck:
    """Latency of an exported ONNX model for inputs shaped ``shape`` (one image) in ONNX Runtime on this machine,
    measured as calibration measures a network (two interleaved sessions)."""
    sessions = measure_interleaved(
        [model_bytes] * NETWORK_SESSIONS,
        input_shapes=[shape] * NETWORK_SESSIONS,
        threads=threads,
        warmup=LATENCY_WARMUP,
        repeats=LATENCY_REPEATS,
    )
    return LatencyCheck(sessions=tuple(sessions))
