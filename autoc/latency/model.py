"""Latency models: predicted milliseconds of a (network plan, compression policy).

The lookup-table model sums measured units (see ``blocks``; each turned into its in-network
time first where the profile has an in-context model, see ``in_context``) and applies the profile's
whole-network correction (``scale * sum + intercept + a cost per fp32 <-> int8 switch``, with
int8 units scaled apart where the profile's correction has an ``int8_scale``).
On this host it measures unknown units on first use and caches them in the profile file.
For other devices a unit the table lacks is costed by the profile's prior when it has one
(profiles fitted from whole networks), else it is an error.

Precision on device is what the runtime runs: fp32 or int8 kernels. Weight bits below 8
change size and accuracy, not latency (unit keys carry the precision, never the bits).
A device whose profile lists no int8 kernels (``identity.precisions``) runs int8 layers
at their fp32 time, with a warning. A profile that lists low-bit kernels (e.g. ``int4``)
and has table entries for them (keys ending ``-int4``) gets those for blocks whose weights
all have at most that many bits; without such entries the int8 time applies.
"""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Protocol, runtime_checkable

from autoc.arch.netspec import NetSpec
from autoc.arch.policy import CompressionPolicy
from autoc.errors import DeviceError
from autoc.latency.blocks import Unit, measure_units, network_units, precision_transitions, prior_features
from autoc.latency.energy import energy_mj
from autoc.latency.runtimes import runtime as runtime_named
from autoc.latency.profile import (
    HOST,
    RUNTIME,
    DeviceProfile,
    StaleSchemaError,
    UnitPrior,
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
    """What autoc needs of a latency model: predicted ms, energy and a per-unit breakdown."""

    def predict(self, spec: NetSpec, policy: CompressionPolicy) -> float:
        """Predicted latency in ms."""

    def predict_energy_mj(self, spec: NetSpec, policy: CompressionPolicy) -> float:
        """Estimated energy of one inference in mJ."""

    def breakdown(self, spec: NetSpec, policy: CompressionPolicy) -> list[tuple[str, str, float]]:
        """(unit name, key, ms) per unit, then the correction; the ms sum to :meth:`predict`."""


class _UnitTime(NamedTuple):
    name: str
    key: str
    ms: float
    int8: bool  # runs on int8 kernels (the correction may scale those apart)


class LookupTableLatencyModel:
    """Per-unit lookup-table times, summed and corrected by ``profile.correction``."""

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
        if measure_missing and not matches_host(profile, self.threads, profile.identity.runtime):
            raise DeviceError(
                f"profile {self.profile_path or profile.device!r} was not measured on this host with "
                f"{self.threads} thread(s) (differs in {sorted(mismatches(profile, self.threads, profile.identity.runtime))}); "
                "measuring into it would mix machines: open it with measure_missing=False, "
                "or use open_host_model() for a host profile"
            )
        self._profile = profile
        self._warned: set[str] = set()

    @property
    def profile(self) -> DeviceProfile:
        return self._profile

    def without_measuring(self, units: Iterable[Unit]) -> "LookupTableLatencyModel":
        """This model where it never measures; else a copy that prices units its table lacks by a
        cost prior fitted on those of ``units`` it has, and saves nothing: for orderings that
        must not wait for hundreds of new measurements (the search's start-up trials)."""
        if not self.measure_missing:
            return self
        table = self._profile.blocks
        known = {u.key: u for u in units if u.measurable and u.key in table}
        prior = UnitPrior.fitted([prior_features(u) for u in known.values()], [table[k] for k in known])
        return LookupTableLatencyModel(replace(self._profile, prior=prior), profile_path=None, measure_missing=False,
                                       threads=self.threads)

    def predict(self, spec: NetSpec, policy: CompressionPolicy) -> float:
        units = network_units(spec, policy)
        rows = self._rows(units, policy)
        return self._profile.correction.apply(
            sum(r.ms for r in rows),
            int8_ms=sum(r.ms for r in rows if r.int8),
            transitions=self._transitions(units),
        )

    def predict_energy_mj(self, spec: NetSpec, policy: CompressionPolicy) -> float:
        """Estimated energy per inference (``autoc.latency.energy``, the profile's coefficients)."""
        return energy_mj(spec, policy, latency_ms=self.predict(spec, policy), coefficients=self._profile.energy)

    def blocks_ms(self, spec: NetSpec, policy: CompressionPolicy) -> float:
        """Sum of the unit times, without the whole-network correction."""
        return sum(r.ms for r in self._rows(network_units(spec, policy), policy))

    def transitions(self, spec: NetSpec, policy: CompressionPolicy) -> int:
        """fp32 <-> int8 switches between consecutive units as the device runs them."""
        return self._transitions(network_units(spec, policy))

    def _transitions(self, units: list[Unit]) -> int:
        if "int8" not in self._profile.identity.precisions:
            return 0  # int8 layers run at their fp32 kernels: no switch happens
        return precision_transitions(u.precision for u in units if u.measurable)

    def breakdown(self, spec: NetSpec, policy: CompressionPolicy) -> list[tuple[str, str, float]]:
        """Unit times scaled by the correction (their share of the network), then the rest of the correction."""
        correction = self._profile.correction
        units = network_units(spec, policy)
        rows = [(r.name, r.key, correction.unit_ms(r.ms, int8=r.int8)) for r in self._rows(units, policy)]
        rows.append((OVERHEAD, OVERHEAD, correction.overhead_ms(self._transitions(units))))
        return rows

    def _rows(self, units: list[Unit], policy: CompressionPolicy) -> list[_UnitTime]:
        table = self._table_for(units)
        in_context = self._profile.in_context
        rows, previous_int8 = [], None
        for unit in units:
            int8 = unit.precision == "int8" and fp32_twin(unit, self._profile) is None  # what the device runs
            low_bit = low_bit_key(unit, policy, self._profile)
            key, ms = (low_bit, table[low_bit]) if low_bit in table else (unit.key, self._unit_ms(unit, table))
            if in_context is not None and unit.measurable:
                ms = in_context.unit_ms(unit, isolated_ms=ms, int8=int8, previous_int8=previous_int8)
            if unit.measurable:
                previous_int8 = int8
            rows.append(_UnitTime(unit.name, key, ms, int8))
        return rows

    def _unit_ms(self, unit: Unit, table: Mapping[str, float]) -> float:
        if not unit.measurable:
            return 0.0
        if unit.key in table:
            return table[unit.key]
        twin = fp32_twin(unit, self._profile)
        if twin is not None:
            self._warn_once(
                "int8",
                f"device {self._profile.device!r} lists no int8 kernels; int8 layers are predicted at their fp32 time",
            )
            return self._unit_ms(twin, table)
        # fp32_twin above returned None: an int8 unit runs int8 kernels here
        return self._profile.prior.ms(prior_features(unit))  # _table_for checked there is a prior

    def _warn_once(self, topic: str, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            log.warning(message)

    def update_profile(self, profile: DeviceProfile) -> None:
        """Adopt ``profile`` (e.g. a new correction) and save it, keeping blocks others saved meanwhile."""
        self._profile = self._merged_with_disk(profile, keep_disk_correction=False)
        self._save()

    def _table_for(self, units: list[Unit]) -> Mapping[str, float]:
        table = self._profile.blocks
        # Host profiles measure any resolution, and their copies that do not measure (start-up orderings)
        # price the missing units by a prior on purpose.
        if not self.measure_missing and self._profile.source != HOST:
            self._check_resolution(units[0].input_shape[-1])  # units[0] is the stem
        missing = [u for u in units if u.measurable and u.key not in table]
        if not self.measure_missing:
            missing = [u for u in missing if (fp32_twin(u, self._profile) or u).key not in table]
            if self._profile.prior is not None:
                missing = []
        if missing:
            self._fill(missing)
            table = self._profile.blocks
        return table

    def _check_resolution(self, size: int) -> None:
        """A profile that never measures prices only the input sizes its table has: its cost prior
        would extrapolate to another one without saying so."""
        have = self._profile.resolutions
        if have and size not in have:
            where = f"device profile {self.profile_path}" if self.profile_path else f"the {self._profile.device!r} profile"
            raise DeviceError(
                f"{where} has tables for input resolutions {list(have)}, not for the candidate's {size}; "
                f"search resolutions it has (resolution: or input_size: in the space), or calibrate "
                f"{self._profile.device!r} at {size}"
            )

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
        log.debug("measuring %d new latency unit(s) on this host", len(missing))
        measured = measure_units(missing, threads=self.threads, runtime=runtime_named(self._profile.identity.runtime))
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
        if not matches_host(on_disk, self.threads, self._profile.identity.runtime):
            return profile  # another machine's: never merged, replaced (open_host_model said so)
        merged = on_disk.with_blocks(profile.blocks)
        if keep_disk_correction:
            return merged
        return replace(merged, correction=profile.correction, validation=profile.validation, in_context=profile.in_context)

    def _save(self) -> None:
        if self.profile_path is not None:
            save_profile(self._profile, self.profile_path)


def low_bit_key(unit: Unit, policy: CompressionPolicy, profile: DeviceProfile) -> str | None:
    """``...-int4`` for an int8 unit whose weights have <= 4 bits, if the profile lists int4 kernels; else None."""
    if unit.precision != "int8" or not unit.convs:
        return None
    bits = max(policy.get(c.name).weight_bits for c in unit.convs)
    kernels = [int(p[3:]) for p in profile.identity.precisions if p.startswith("int") and p[3:].isdigit()]
    usable = [k for k in kernels if bits <= k < 8]
    return unit.key.removesuffix("-int8") + f"-int{min(usable)}" if usable else None


def fp32_twin(unit: Unit, profile: DeviceProfile) -> Unit | None:
    """The fp32 version of an int8 ``unit`` on a device without int8 kernels, else None."""
    if unit.precision != "int8" or "int8" in profile.identity.precisions:
        return None
    return replace(unit, key=unit.key.removesuffix("-int8") + "-fp32", precision="fp32")


def open_host_model(profile_path: str | os.PathLike[str], *, threads: int = 1,
                    runtime: str = RUNTIME) -> LookupTableLatencyModel:
    """The host's lookup-table model measured in ``runtime``, cached at ``profile_path`` and extended as needed.

    A profile measured elsewhere (other CPU, runtime version or thread count) is not reused:
    a warning says so and a fresh profile replaces it at the first save.
    """
    path = Path(profile_path)
    profile = new_host_profile(threads, runtime)
    cached = _cached_host_profile(path)
    if cached is not None:
        if cached.device != profile.device:
            raise DeviceError(
                f"{path} is the profile of device {cached.device!r}, not of this host; "
                "give the host profile another path, or use it with LookupTableLatencyModel(measure_missing=False)"
            )
        diffs = mismatches(cached, threads, runtime)
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


def _cached_host_profile(path: Path) -> DeviceProfile | None:
    """The cached host profile, or None when absent or written by another autoc version (a cache, remade)."""
    if not path.exists():
        return None
    try:
        return load_profile(path)
    except StaleSchemaError as exc:
        log.warning("%s; starting a fresh host profile that will replace it", exc)
        return None
