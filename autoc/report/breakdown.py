"""Per-block latency of one candidate, read from the device profile the search used.

The report never measures: when the profile is missing or lacks a block, the page says
so (measuring a host profile from scratch takes minutes of calibration).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoc.candidate import Candidate
from autoc.arch.policy import PRECISIONS
from autoc.errors import AutocError
from autoc.latency.device import find_profile, profile_path
from autoc.latency.model import OVERHEAD, LookupTableLatencyModel
from autoc.latency.profile import load_profile


@dataclass(frozen=True)
class BlockTime:
    """One row of a latency breakdown: a unit (or the correction), its precision and predicted ms."""

    name: str  # stem, stages.S.B, head, or overhead (the whole-network correction)
    precision: str  # fp32, int8, or '' for the correction and blockless units
    ms: float


@dataclass(frozen=True)
class LatencyBreakdown:
    """The chosen candidate's predicted ms per unit from the device profile, or why it is unavailable."""

    profile: Path
    rows: tuple[BlockTime, ...] = ()
    unavailable: str | None = None  # why there are no rows, for the page

    @property
    def total_ms(self) -> float:
        return sum(row.ms for row in self.rows)


def latency_breakdown(candidate: Candidate, *, device: str, runs_dir: Path) -> LatencyBreakdown:
    """The breakdown of ``candidate`` on ``device`` from the profile under ``runs_dir``; never measures."""
    found = find_profile(device, runs_dir=runs_dir)
    if found is None:
        path = profile_path(device, runs_dir=runs_dir)
        return LatencyBreakdown(
            profile=path,
            unavailable=(
                f"no latency profile for device {device!r} at {path}; the breakdown reads the profile the "
                "search measured: run the report where the search ran, or copy the profile there"
            ),
        )
    path = found[0]
    try:
        model = LookupTableLatencyModel(load_profile(path), profile_path=path, measure_missing=False)
        units = model.breakdown(candidate.netspec(), candidate.policy)
    except AutocError as exc:
        return LatencyBreakdown(profile=path, unavailable=str(exc))
    rows = tuple(BlockTime(name=name, precision=_precision(name, key), ms=ms) for name, key, ms in units)
    return LatencyBreakdown(profile=path, rows=rows)


def _precision(name: str, key: str) -> str:
    """Unit keys end with the precision the unit runs at (see autoc.latency.blocks)."""
    last = key.rsplit("-", 1)[-1]
    return last if name != OVERHEAD and last in PRECISIONS else ""
