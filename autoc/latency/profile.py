"""Device profiles: who measured (identity), the block lookup table, the fitted correction.

Profiles are data (JSON, schema ``autoc.device/2``), written atomically so that a crash or
a parallel reader never sees half a file. The file's fields, their types and what each means
are in its JSON Schema, ``autoc/schemas/device_profile.schema.json``: ``load_profile`` checks a
file against it first, then what a schema cannot say (finite times, the in-context feature
order). In short: schema, device, identity (who measured: CPU, threads, runtime and version),
source, space, blocks (unit key -> ms), correction, prior, energy, validation, in_context.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field, fields as dataclass_fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import nnls

from autoc import schemas
from autoc.errors import DeviceError
from autoc.files import write_text_atomic
from autoc.latency.blocks import DEPTHWISE_KERNELS
from autoc.latency.energy import EnergyCoefficients
from autoc.latency.in_context import InContextModel
from autoc.onnx.int8 import INT8, host_int8_weights

SCHEMA = "autoc.device/2"
HOST = "host"
RUNTIME = "onnxruntime"  # the default runtime; autoc.latency.runtimes lists the others


def host_device(runtime: str = RUNTIME) -> str:
    """The device name of this host's profile measured in ``runtime``: ``host`` for ONNX Runtime,
    ``host-RUNTIME`` (e.g. ``host-executorch``) for another, so one never overwrites the other."""
    return HOST if runtime == RUNTIME else f"{HOST}-{runtime}"


def host_runtime(device: str) -> str | None:
    """The runtime of a host device name (``host`` -> onnxruntime, ``host-executorch`` -> executorch);
    None for a device that is not this host."""
    from autoc.latency.runtimes import RUNTIMES

    return next((r for r in RUNTIMES if host_device(r) == device), None)

# Fields whose change makes cached measurements meaningless on this host.
_MATCH_FIELDS = ("cpu_model", "logical_cores", "threads", "runtime", "runtime_version", "torch", "int8_weights")


class StaleSchemaError(DeviceError):
    """A profile written under another schema version (a host cache of it may simply be replaced)."""


@dataclass(frozen=True)
class DeviceIdentity:
    """Everything that changes the measured numbers, recorded beside them."""

    cpu_model: str
    logical_cores: int
    threads: int
    runtime: str
    runtime_version: str
    python: str
    torch: str
    precisions: tuple[str, ...]
    created: str
    # How int8 weights were stored in the measured graphs (autoc.onnx.int8): the kernels timed.
    # Profiles written before the field measured int8.
    int8_weights: str = INT8

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["precisions"] = list(self.precisions)
        return data


@dataclass(frozen=True)
class Correction:
    """Whole-network latency from its units:
    ``scale * fp32_sum + int8_scale * int8_sum + intercept_ms + ms_per_transition * transitions``
    (``int8_sum``: the units the device runs with int8 kernels, ``fp32_sum`` the rest).

    ``scale`` absorbs what isolated units over- or under-count in a network (layout
    reorders at every unit boundary, caches warm with one unit's weights);
    ``intercept_ms`` the per-inference cost a network pays once; ``ms_per_transition``
    what each fp32 <-> int8 switch between consecutive units costs in a network beyond
    the Q/DQ its isolated units already pay (fitted on this project's host: 8-21 us
    each, the largest term left after scale and intercept); ``int8_scale`` the int8
    units' own scale where fitting supports one (on this project's host an isolated int8
    unit overstates its in-network time more than an fp32 one: 0.85 vs 0.93), ``None``
    for one scale. Profiles written before a term existed load without it.
    """

    scale: float = 1.0
    intercept_ms: float = 0.0
    ms_per_transition: float = 0.0
    int8_scale: float | None = None

    def apply(self, unit_sum_ms: float, *, transitions: int = 0, int8_ms: float = 0.0) -> float:
        """Predicted ms of a network whose units sum to ``unit_sum_ms``, ``int8_ms`` of it in int8 units."""
        return self.unit_ms(unit_sum_ms - int8_ms, int8=False) + self.unit_ms(int8_ms, int8=True) + self.overhead_ms(transitions)

    def unit_ms(self, ms: float, *, int8: bool) -> float:
        """A unit's (or a sum of units') share of the network's time."""
        return ms * (self.int8_scale if int8 and self.int8_scale is not None else self.scale)

    def overhead_ms(self, transitions: int) -> float:
        """What the network costs beyond its scaled units."""
        return self.intercept_ms + self.ms_per_transition * transitions

    def describe(self) -> str:
        """``x0.935 -0.178 ms +0.0139 ms/transition``: the formula's coefficients, for messages."""
        text = f"x{self.scale:.3f}" + (f" (int8 x{self.int8_scale:.3f})" if self.int8_scale is not None else "")
        text += f" {self.intercept_ms:+.3f} ms"
        return text + (f" {self.ms_per_transition:+.4f} ms/transition" if self.ms_per_transition else "")


# The prior's features of a unit (``autoc.latency.blocks.prior_features``), per precision it runs at:
# million MACs outside depthwise convs (the head's included), million depthwise MACs per kernel
# size (memory-bound, another cost per MAC; a 7x7 one is not 49/9 of a 3x3 one) with
# ``dw_mmac`` for other kernel sizes, million activation elements read and written, and 1 (a
# fixed part).
PRIOR_FEATURES = tuple(f"{precision}_{name}" for precision in ("fp32", "int8")
                       for name in ("mmac", "dw_mmac", *(f"dw_k{k}_mmac" for k in DEPTHWISE_KERNELS),
                                    "melement", "unit"))


def _stand_ins(feature: str) -> tuple[str, ...]:
    """A feature without a coefficient costs as the first of these that has one: a depthwise MAC
    of one kernel size as any depthwise MAC (profiles before the kernel split), a depthwise MAC
    as another MAC, one precision as the other (data of one precision only)."""
    precision, name = feature.split("_", 1)
    other = "int8" if precision == "fp32" else "fp32"
    if name.startswith("dw_k"):
        names: tuple[str, ...] = (name, "dw_mmac", "mmac")
    elif name == "dw_mmac":
        names = (name, "mmac")
    else:
        names = (name,)
    return tuple(f"{p}_{n}" for p in (precision, other) for n in names)


_PRIOR_STAND_INS = {feature: _stand_ins(feature) for feature in PRIOR_FEATURES}


def fit_relative_nonnegative(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative coefficients c minimising the squared relative error of ``design @ c`` against
    ``y`` (a prior's costs, from measured units or from whole networks)."""
    scale = np.maximum(np.abs(design).max(axis=0), 1e-12)  # comparable columns: MMACs, elements, counts
    coef, _ = nnls(design / scale / y[:, None], np.ones_like(y))
    return coef / scale


_LEGACY_PRIOR = ("ms_per_mmac", "ms_per_melement", "ms_per_unit")


@dataclass(frozen=True)
class UnitPrior:
    """Cost of a unit the table lacks, linear in its work: ms per unit of each named feature
    (``PRIOR_FEATURES``). A feature without a coefficient takes its first stand-in's (see above)."""

    coefficients: Mapping[str, float]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.coefficients) - set(PRIOR_FEATURES))
        if unknown:
            raise ValueError(f"unknown prior feature(s) {unknown}; known: {list(PRIOR_FEATURES)}")
        if not self.coefficients:
            raise ValueError(f"a prior needs coefficients (some of {list(PRIOR_FEATURES)})")

    @classmethod
    def uniform(cls, *, ms_per_mmac: float, ms_per_melement: float, ms_per_unit: float) -> "UnitPrior":
        """One cost per MAC, element and unit whatever the conv and precision (profiles before the named features)."""
        return cls({"fp32_mmac": ms_per_mmac, "fp32_melement": ms_per_melement, "fp32_unit": ms_per_unit})

    @classmethod
    def fitted(cls, features: Sequence[Mapping[str, float]], ms: Sequence[float]) -> "UnitPrior":
        """Non-negative costs of the features that fit measured units (``features[i]`` took
        ``ms[i]``) with the least squared relative error."""
        names = sorted({name for f in features for name, value in f.items() if value})
        if not names or len(features) != len(ms):
            raise ValueError(f"fitting a prior needs measured units with features, got {len(features)} and {len(ms)} times")
        x = np.array([[f.get(name, 0.0) for name in names] for f in features])
        return cls(dict(zip(names, map(float, fit_relative_nonnegative(x, np.asarray(ms, dtype=float))))))

    def coefficient(self, feature: str) -> float:
        return next((float(self.coefficients[f]) for f in _PRIOR_STAND_INS[feature] if f in self.coefficients), 0.0)

    def ms(self, features: Mapping[str, float]) -> float:
        return sum(self.coefficient(name) * value for name, value in features.items())


@dataclass(frozen=True)
class DeviceProfile:
    """A device's identity, block lookup table (key -> ms) and whole-network correction.

    Treat ``blocks``, ``space`` and ``validation`` as read-only; derive new profiles with
    :meth:`with_blocks` or ``dataclasses.replace``.
    """

    device: str
    identity: DeviceIdentity
    blocks: Mapping[str, float] = field(default_factory=dict)
    correction: Correction = Correction()
    validation: Mapping[str, Any] = field(default_factory=dict)
    source: str = HOST
    space: Mapping[str, str] = field(default_factory=dict)
    prior: UnitPrior | None = None
    energy: EnergyCoefficients = EnergyCoefficients()
    # Units' in-network time from their table time (autoc.latency.in_context), applied before
    # the correction; None where calibration had no network prefixes to learn it from.
    in_context: InContextModel | None = None

    def with_blocks(self, blocks: Mapping[str, float]) -> "DeviceProfile":
        return replace(self, blocks={**self.blocks, **blocks})

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The input sizes the table has a stem for (``stem-r224-...``), ascending: the resolutions
        it can price whole networks at."""
        sizes = {key.split("-")[1][1:] for key in self.blocks if key.startswith("stem-r")}
        return tuple(sorted(int(size) for size in sizes if size.isdigit()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "device": self.device,
            "identity": self.identity.to_dict(),
            "source": self.source,
            "space": dict(self.space),
            "blocks": dict(sorted(self.blocks.items())),
            "correction": {k: v for k, v in asdict(self.correction).items() if v is not None},
            "prior": dict(self.prior.coefficients) if self.prior is not None else None,
            "energy": self.energy.to_dict(),
            "validation": dict(self.validation),
        } | ({"in_context": self.in_context.to_dict()} if self.in_context is not None else {})


def cpu_model() -> str:
    """This machine's CPU model as /proc/cpuinfo names it (profiles and benchmark results record it)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip().lower(), value.strip())
    # x86 says "model name"; many ARM kernels only say "Hardware".
    return fields.get("model name") or fields.get("hardware") or platform.processor() or platform.machine() or "unknown"


def host_identity(threads: int, runtime: str = RUNTIME) -> DeviceIdentity:
    """This machine's identity for a host profile: CPU, cores, ``threads``, ``runtime`` and library versions."""
    import torch

    from autoc.latency.runtimes import runtime as runtime_named

    return DeviceIdentity(
        cpu_model=cpu_model(),
        logical_cores=os.cpu_count() or 1,
        threads=threads,
        runtime=runtime,
        runtime_version=runtime_named(runtime).version(),
        python=platform.python_version(),
        torch=torch.__version__,
        precisions=("fp32", "int8"),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        int8_weights=host_int8_weights(),
    )


def data_identity(
    description: str, *, created: str | None = None, precisions: tuple[str, ...] = ("fp32",)
) -> DeviceIdentity:
    """Identity of a profile built from published data (no runtime known): fp32 kernels only,
    unless the data measured others (``precisions``)."""
    return DeviceIdentity(
        cpu_model=f"unknown ({description})",
        logical_cores=0,
        threads=0,
        runtime="unknown",
        runtime_version="",
        python="",
        torch="",
        precisions=precisions,
        created=created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def new_host_profile(threads: int, runtime: str = RUNTIME) -> DeviceProfile:
    """An empty host profile for ``threads`` threads in ``runtime``, filled by calibration."""
    return DeviceProfile(device=host_device(runtime), identity=host_identity(threads, runtime), source=HOST)


def mismatches(profile: DeviceProfile, threads: int, runtime: str = RUNTIME) -> dict[str, tuple[Any, Any]]:
    """Identity fields where ``profile`` differs from this host measuring in ``runtime``: name -> (profile's, host's)."""
    here = host_identity(threads, runtime)
    diffs = {
        name: (getattr(profile.identity, name), getattr(here, name))
        for name in _MATCH_FIELDS
        if getattr(profile.identity, name) != getattr(here, name)
    }
    if profile.device != host_device(runtime):
        diffs["device"] = (profile.device, host_device(runtime))
    return diffs


def matches_host(profile: DeviceProfile, threads: int, runtime: str = RUNTIME) -> bool:
    """Whether ``profile`` was measured on this machine in ``runtime``, its version and thread count."""
    return not mismatches(profile, threads, runtime)


def save_profile(profile: DeviceProfile, path: str | os.PathLike[str]) -> None:
    """Write ``profile`` atomically (autoc.files: temp file in the same directory, then os.replace)."""
    write_text_atomic(Path(path), json.dumps(profile.to_dict(), indent=1) + "\n")


def load_profile(path: str | os.PathLike[str]) -> DeviceProfile:
    """The profile in ``path``; DeviceError naming the file, the bad field and the fix."""
    path = Path(path)
    data = _read_json_object(path, fix="delete it to recalibrate (autoc calibrate) or point to another profile")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise StaleSchemaError(
            f"device profile {path} has schema {schema!r}, this autoc reads {SCHEMA!r}; "
            f"re-run 'autoc calibrate' (or delete the file) to make a current one"
        )
    try:
        # the schema checks shapes and types; the constructors then check what it cannot (finite values)
        problem = schemas.first_problem(schemas.DEVICE_PROFILE, data)
        if problem is not None:
            raise _FieldError(problem)
        return _profile_from(data)
    except (_FieldError, DeviceError) as exc:
        # _FieldError names the field; a DeviceError from a value check (energy >= 0) names the value.
        raise DeviceError(
            f"device profile {path}: {exc}; correct the field in the file, or delete the file to recalibrate "
            f"(autoc calibrate; the schema is autoc/schemas/{schemas.DEVICE_PROFILE})"
        ) from None


def _read_json_object(path: Path, *, fix: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeviceError(f"no device profile at {path}; run 'autoc calibrate' to create one") from None
    except UnicodeDecodeError:
        raise DeviceError(f"device profile {path} is not a valid profile JSON (not UTF-8 text); {fix}") from None
    except OSError as exc:
        raise DeviceError(f"cannot read device profile {path} ({exc.strerror}); check its permissions") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeviceError(f"device profile {path} is not valid JSON ({exc.msg}, line {exc.lineno}); {fix}") from None
    if not isinstance(data, dict):
        raise DeviceError(f"device profile {path} is not a JSON object; {fix}")
    return data


class _FieldError(ValueError):
    """A profile field of the wrong JSON type or value; the message starts with ``field NAME``."""


def _profile_from(data: Mapping[str, Any]) -> DeviceProfile:
    """The profile of a document the schema accepted."""
    prior, in_context = data["prior"], data.get("in_context")
    return DeviceProfile(
        device=data["device"],
        identity=_identity(data["identity"]),
        blocks={k: _milliseconds(v, f"blocks[{k!r}]") for k, v in data["blocks"].items()},
        # int8_scale null is the same as absent: one scale for every unit
        correction=Correction(**{k: float(v) for k, v in data["correction"].items() if v is not None}),
        validation=dict(data["validation"]),
        source=data["source"],
        space=dict(data["space"]),
        prior=None if prior is None else _prior(prior),
        energy=EnergyCoefficients.from_dict(data["energy"]),
        in_context=None if in_context is None else _in_context(in_context),
    )


def _identity(data: Mapping[str, Any]) -> DeviceIdentity:
    values = {f.name: data[f.name] for f in dataclass_fields(DeviceIdentity) if f.name in data}
    # JSON Schema counts 4.0 as an integer
    counts = {k: int(values[k]) for k in ("logical_cores", "threads")}
    return DeviceIdentity(**values | counts | {"precisions": tuple(values["precisions"])})


def _prior(data: Mapping[str, float]) -> UnitPrior:
    """Named coefficients; or, from profiles written before them, one cost per MAC, element and unit."""
    if "ms_per_mmac" in data:
        return UnitPrior.uniform(**{k: float(data[k]) for k in _LEGACY_PRIOR})
    return UnitPrior({k: float(v) for k, v in data.items()})


def _in_context(data: Mapping[str, Any]) -> InContextModel:
    try:
        return InContextModel.from_dict(data)
    except ValueError as exc:  # its messages start with the field's name
        raise _FieldError(f"field {exc}") from None


def _milliseconds(value: float, name: str) -> float:
    ms = float(value)
    if not ms >= 0 or ms == float("inf"):  # NaN and Infinity parse from JSON, and the schema cannot refuse them
        raise _FieldError(f"field {name} = {value!r} is not a finite time >= 0 ms")
    return ms
