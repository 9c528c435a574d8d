"""Latency models: predicted milliseconds of a (network plan, compression policy).

The lookup-table model sums measured units (see ``blocks``) and adds the profile's
whole-network correction. On this host it measures unknown units on first use and
caches them in the profile file; for other devices a missing unit is an error.
"""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Protocol, runtime_checkable

from autoc.arch.netspec import NetSpec
from autoc.compress.policy import CompressionPolicy
from autoc.errors import DeviceError
from autoc.latency.blocks import Unit, measure_units, network_units
from autoc.latency.profile import (
    DeviceProfile,
    load_profile,
    matches_host,
    mismatches,
    new_host_profile,
    save_profile,
)

log = logging.getLogger("autoc.latency")

OVERHEAD = "overhead"


@runtime_checkable
class LatencyModel(Protocol):
    def predict(self, spec: NetSpec, policy: CompressionPolicy) -> float:
        """Predicted latency in ms."""

    def breakdown(self, spec: NetSpec, policy: CompressionPolicy) -> list[tuple[str, str, float]]:
        """(unit name, key, ms) per unit, then the correction; the ms sum to :meth:`predict`."""


class LookupTableLatencyModel:
    """Sum of per-unit lookup-table times plus ``profile.overhead_ms``."""

    def __init__(
        self,
        profile: DeviceProfile,
        *,
        profile_path: str | os.PathLike[str] | None,
        measure_missing: bool,
        threads: int | None = None,
    ) -> None:
        self.threads = profile.identity.threads if threads is None else threads
        self.profile_path = Path(profile_path) if profile_path is not None else None
        self.measure_missing = measure_missing
        if measure_missing and not matches_host(profile, self.threads):
            raise DeviceError(
                f"profile {self.profile_path or profile.device!r} was not measured on this host with "
                f"{self.threads} thread(s) (differs in {sorted(mismatches(profile, self.threads))}); "
                "measuring into it would mix machines: open it with measure_missing=False, "
                "or use open_host_model() for a host profile"
            )
        self._profile = profile

    @property
    def profile(self) -> DeviceProfile:
        return self._profile

    def predict(self, spec: NetSpec, policy: CompressionPolicy) -> float:
        return self.blocks_ms(spec, policy) + self._profile.overhead_ms

    def blocks_ms(self, spec: NetSpec, policy: CompressionPolicy) -> float:
        """Sum of the unit times, without the whole-network correction."""
        units = network_units(spec, policy)
        table = self._table_for(units)
        return sum(table.get(u.key, 0.0) for u in units)

    def breakdown(self, spec: NetSpec, policy: CompressionPolicy) -> list[tuple[str, str, float]]:
        units = network_units(spec, policy)
        table = self._table_for(units)
        rows = [(u.name, u.key, table.get(u.key, 0.0)) for u in units]
        rows.append((OVERHEAD, OVERHEAD, self._profile.overhead_ms))
        return rows

    def update_profile(self, profile: DeviceProfile) -> None:
        """Adopt ``profile`` (e.g. a new correction) and save it, keeping blocks others saved meanwhile."""
        self._profile = self._merged_with_disk(profile, keep_disk_correction=False)
        self._save()

    def _table_for(self, units: list[Unit]) -> Mapping[str, float]:
        table = self._profile.blocks
        missing = [u for u in units if u.measurable and u.key not in table]
        if missing:
            self._fill(missing)
            table = self._profile.blocks
        return table

    def _fill(self, missing: list[Unit]) -> None:
        if not self.measure_missing:
            unit = missing[0]
            device = self._profile.device
            where = f"device profile {self.profile_path}" if self.profile_path else f"the {device!r} profile"
            raise DeviceError(
                f"{where} has no measurement for unit {unit.name!r} (key {unit.key}"
                f"{f', and {len(missing) - 1} more' if len(missing) > 1 else ''}); "
                f"measure these blocks on {self._profile.device!r} and import them into the profile, "
                "or restrict the search space to blocks it has"
            )
        log.info("measuring %d new latency unit(s) on this host", len(missing))
        measured = measure_units(missing, threads=self.threads)
        profile = self._profile.with_blocks(measured)
        self._profile = self._merged_with_disk(profile, keep_disk_correction=True)
        self._save()

    def _merged_with_disk(self, profile: DeviceProfile, *, keep_disk_correction: bool) -> DeviceProfile:
        """Union with blocks another process saved to the same host profile since we loaded it."""
        if self.profile_path is None or not self.profile_path.exists():
            return profile
        try:
            on_disk = load_profile(self.profile_path)
        except DeviceError:
            return profile  # unreadable: ours replaces it
        if not matches_host(on_disk, self.threads):
            return profile  # another machine's: never merged, replaced (open_host_model said so)
        merged = on_disk.with_blocks(profile.blocks)
        if keep_disk_correction:
            return merged
        return replace(merged, overhead_ms=profile.overhead_ms, validation=profile.validation)

    def _save(self) -> None:
        if self.profile_path is not None:
            save_profile(self._profile, self.profile_path)


def open_host_model(profile_path: str | os.PathLike[str], *, threads: int = 1) -> LookupTableLatencyModel:
    """The host's lookup-table model, cached at ``profile_path`` and extended as needed.

    A profile measured elsewhere (other CPU, runtime version or thread count) is not reused:
    a warning says so and a fresh profile replaces it at the first save.
    """
    path = Path(profile_path)
    profile = new_host_profile(threads)
    if path.exists():
        cached = load_profile(path)
        if cached.device != profile.device:
            raise DeviceError(
                f"{path} is the profile of device {cached.device!r}, not of this host; "
                "give the host profile another path, or use it with LookupTableLatencyModel(measure_missing=False)"
            )
        diffs = mismatches(cached, threads)
        if not diffs:
            profile = cached
        else:
            changes = ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in diffs.items())
            log.warning(
                "host latency profile %s was measured under other conditions (%s); "
                "starting a fresh profile that will replace it",
                path,
                changes,
            )
    return LookupTableLatencyModel(profile, profile_path=path, measure_missing=True, threads=threads)
