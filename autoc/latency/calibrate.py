"""Fit the whole-network correction of a lookup-table model and record how well it predicts.

Isolated units miss what only a whole network has (one session call, layout reorders and
int8 Q/DQ at fewer boundaries, caches shared by all the weights), so each sampled network
is measured end to end and the median gap to its unit sum becomes ``overhead_ms``.
"""
from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Any, Sequence

from autoc.arch.builder import build_model
from autoc.arch.netspec import NetSpec
from autoc.compress.policy import CompressionPolicy
from autoc.export.onnx_export import export_onnx, policy_int8_layers
from autoc.errors import DeviceError
from autoc.latency.blocks import network_units, unit_batch, unit_times
from autoc.latency.measure import measure_interleaved
from autoc.latency.model import LookupTableLatencyModel
from autoc.latency.profile import DeviceProfile

Network = tuple[NetSpec, CompressionPolicy]

NETWORK_WARMUP = 5
NETWORK_REPEATS = 30


def export_network(spec: NetSpec, policy: CompressionPolicy) -> bytes:
    """The network as the device would run it: int8 QDQ where ``policy`` says int8 (random calibration)."""
    return export_onnx(
        build_model(spec),
        input_shape=_input_shape(spec),
        int8_layers=policy_int8_layers(spec, policy),
    )


def measure_networks(
    networks: Sequence[Network],
    *,
    threads: int = 1,
    warmup: int = NETWORK_WARMUP,
    repeats: int = NETWORK_REPEATS,
) -> list[float]:
    """Median end-to-end ms of each network, measured interleaved."""
    results = measure_interleaved(
        [export_network(spec, policy) for spec, policy in networks],
        input_shapes=[_input_shape(spec) for spec, _ in networks],
        threads=threads,
        warmup=warmup,
        repeats=repeats,
    )
    return [m.median_ms for m in results]


def calibrate_overhead(
    model: LookupTableLatencyModel,
    networks: Sequence[Network],
    *,
    held_out: Sequence[Network] = (),
    warmup: int = NETWORK_WARMUP,
    repeats: int = NETWORK_REPEATS,
) -> DeviceProfile:
    """Set ``overhead_ms`` = median(measured - unit sum) over ``networks``; save and return the profile.

    The networks and all their units are measured in one interleaved run, so machine drift
    between an old table entry and today's network cannot leak into the correction; the
    fresh unit times replace the table's. Validation figures are computed on ``held_out``
    when given (the honest figure), else on the fitting networks (flagged ``in_sample``).
    """
    if not networks:
        raise ValueError("calibrate_overhead needs at least one network to fit the correction")
    if not model.measure_missing:
        raise DeviceError(
            f"calibrate_overhead measures on this host, but the model's profile is for {model.profile.device!r}; "
            "calibrate a host model from open_host_model(), or import that device's own measurements"
        )
    everything = [*networks, *held_out]
    unit_lists = [[u for u in network_units(spec, policy) if u.measurable] for spec, policy in everything]
    batch = unit_batch(u for units in unit_lists for u in units)
    measured = measure_interleaved(
        [m for _, m, _ in batch] + [export_network(spec, policy) for spec, policy in everything],
        input_shapes=[s for _, _, s in batch] + [_input_shape(spec) for spec, _ in everything],
        threads=model.threads,
        warmup=warmup,
        repeats=repeats,
    )
    fresh = unit_times([key for key, _, _ in batch], measured[: len(batch)])
    network_ms = [m.median_ms for m in measured[len(batch) :]]
    unit_sums = [sum(fresh[u.key] for u in units) for units in unit_lists]

    fit = len(networks)
    overhead = statistics.median(m - b for m, b in zip(network_ms[:fit], unit_sums[:fit]))
    check = slice(fit, None) if held_out else slice(0, fit)
    validation = validation_figures(
        measured=network_ms[check],
        predicted=[b + overhead for b in unit_sums[check]],
    )
    validation |= {"in_sample": not held_out, "fit_networks": fit}
    model.update_profile(replace(model.profile.with_blocks(fresh), overhead_ms=overhead, validation=validation))
    return model.profile


def validation_figures(*, measured: Sequence[float], predicted: Sequence[float]) -> dict[str, Any]:
    """Share within +-10 %, MAPE, Kendall tau, and the per-network pairs."""
    errors = [(p - m) / m for m, p in zip(measured, predicted)]
    return {
        "networks": [
            {"measured_ms": round(m, 4), "predicted_ms": round(p, 4), "error_pct": round(100 * e, 2)}
            for m, p, e in zip(measured, predicted, errors)
        ],
        "n": len(errors),
        "within_10pct": sum(abs(e) <= 0.10 for e in errors) / len(errors) if errors else None,
        "mape_pct": 100 * statistics.fmean(abs(e) for e in errors) if errors else None,
        "kendall_tau": kendall_tau(measured, predicted),
    }


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b (ties-aware rank agreement); None when undefined."""
    concordant = discordant = ties_a = ties_b = 0
    n = len(a)
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = ((concordant + discordant + ties_a) * (concordant + discordant + ties_b)) ** 0.5
    return (concordant - discordant) / denominator if denominator else None


def _input_shape(spec: NetSpec) -> tuple[int, int, int, int]:
    return (1, spec.in_channels, spec.input_size, spec.input_size)
