"""Fit the whole-network correction of a lookup-table model and record how well it predicts.

Isolated units miss what only a whole network has (one session call, layout reorders and
int8 Q/DQ at fewer boundaries, caches shared by all the weights), so sampled networks are
measured end to end, interleaved with all their units in the same rounds (this machine's
speed drifts by tens of percent over minutes: units and networks must share the drift),
and ``measured = scale * unit_sum + intercept + ms_per_transition * transitions`` is fitted
on them (transitions: fp32 <-> int8 switches between consecutive units; on this project's
host they were the largest error left by scale and intercept alone, see
benchmarks/latency_diagnose.py). Held-out networks,
measured in the same rounds but never used in the fit, give the validation figures.
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import replace
from typing import Sequence

import numpy as np

from autoc.arch.builder import build_model
from autoc.arch.netspec import NetSpec
from autoc.compress.policy import CompressionPolicy
from autoc.errors import DeviceError
from autoc.export.onnx_export import export_onnx, policy_int8_layers
from autoc.latency.blocks import network_units, precision_transitions, unit_batch, unit_times
from autoc.latency.measure import FIGURE_PERCENTILE, OUTLIER_IQR, measure_interleaved
from autoc.latency.model import LookupTableLatencyModel
from autoc.latency.profile import Correction, DeviceProfile
from autoc.latency.validate import validation_figures

Network = tuple[NetSpec, CompressionPolicy]

NETWORK_WARMUP = 5
NETWORK_REPEATS = 60
# Below this many fitting networks an intercept is not identifiable from noise: scale only.
MIN_NETWORKS_FOR_INTERCEPT = 8
# A third coefficient (cost per fp32 <-> int8 switch) needs a few more.
MIN_NETWORKS_FOR_TRANSITIONS = 12


def export_network(spec: NetSpec, policy: CompressionPolicy) -> bytes:
    """The network as the device would run it: int8 QDQ where ``policy`` says int8 (random calibration)."""
    return export_onnx(
        build_model(spec),
        input_shape=input_shape(spec),
        int8_layers=policy_int8_layers(spec, policy),
    )


def measure_networks(
    networks: Sequence[Network],
    *,
    threads: int = 1,
    warmup: int = NETWORK_WARMUP,
    repeats: int = NETWORK_REPEATS,
) -> list[float]:
    """End-to-end latency figure (ms) of each network, measured interleaved."""
    results = measure_interleaved(
        [export_network(spec, policy) for spec, policy in networks],
        input_shapes=[input_shape(spec) for spec, _ in networks],
        threads=threads,
        warmup=warmup,
        repeats=repeats,
    )
    return [m.figure_ms for m in results]


def fit_correction(
    unit_sums: Sequence[float], measured: Sequence[float], *, transitions: Sequence[int] | None = None
) -> Correction:
    """The correction minimising the squared *relative* error (the figure that counts).

    Candidates: ``scale * sum + intercept`` and, given ``transitions`` (fp32 <-> int8
    switches per network) with enough networks, the same plus ``ms_per_transition *
    transitions``; the one with the lower leave-one-out relative error wins, so a term
    the fitting networks cannot support is left out. With few networks, or when no fit
    is plausible (scale <= 0, a negative transition cost, a non-positive fitted time),
    only the scale is fitted: the median ratio measured / unit sum.
    """
    sums, ms = np.asarray(unit_sums, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if len(ms) == 0 or np.any(ms <= 0):
        raise ValueError("fit_correction needs at least one network with a positive measured time")
    designs = []
    if len(ms) >= MIN_NETWORKS_FOR_INTERCEPT and np.ptp(sums) > 0:
        designs.append(np.stack([sums, np.ones_like(sums)], axis=1))
        switches = np.asarray(transitions if transitions is not None else [], dtype=np.float64)
        if len(switches) == len(ms) >= MIN_NETWORKS_FOR_TRANSITIONS and np.ptp(switches) > 0:
            designs.append(np.column_stack([designs[0], switches]))
    best, best_error = None, np.inf
    for design in designs:
        coefficients, loo_error = _relative_least_squares(design, ms)
        plausible = coefficients[0] > 0 and np.all(coefficients[2:] >= 0) and np.all(design @ coefficients > 0)
        if plausible and loo_error < best_error:
            best, best_error = coefficients, loo_error
    if best is not None:
        return Correction(*map(float, best))
    positive = sums > 0
    scale = statistics.median(ms[positive] / sums[positive]) if positive.any() else 1.0
    return Correction(scale=float(scale), intercept_ms=0.0)


def _relative_least_squares(design: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients minimising sum(((design @ c - measured) / measured)^2), and their mean squared
    leave-one-out relative error (closed form through the hat matrix; inf when a point is its own fit)."""
    a = design / measured[:, None]
    coefficients, *_ = np.linalg.lstsq(a, np.ones(len(measured)), rcond=None)
    hat = np.einsum("ij,ji->i", a, np.linalg.pinv(a))
    if np.any(hat > 1 - 1e-9):
        return coefficients, np.inf
    residual = (1 - a @ coefficients) / (1 - hat)
    return coefficients, float(np.mean(residual**2))


def calibrate_correction(
    model: LookupTableLatencyModel,
    networks: Sequence[Network],
    *,
    held_out: Sequence[Network] = (),
    warmup: int = NETWORK_WARMUP,
    repeats: int = NETWORK_REPEATS,
) -> DeviceProfile:
    """Measure units and networks interleaved, fit the correction on ``networks``; save and return the profile.

    The fresh unit times replace the table's, so machine drift between an old table entry
    and today's networks cannot leak into the correction. Validation figures are computed
    on ``held_out`` when given (the honest figure), else on the fitting networks (flagged
    ``in_sample``).
    """
    if not networks:
        raise ValueError("calibrate_correction needs at least one network to fit the correction")
    if not model.measure_missing:
        raise DeviceError(
            f"calibration measures on this host, but the model's profile is for {model.profile.device!r}; "
            "calibrate a host model from open_host_model(), or import that device's own measurements"
        )
    start = time.perf_counter()
    everything = [*networks, *held_out]
    unit_lists = [[u for u in network_units(spec, policy) if u.measurable] for spec, policy in everything]
    batch = unit_batch(u for units in unit_lists for u in units)
    measured = measure_interleaved(
        [m for _, m, _ in batch] + [export_network(spec, policy) for spec, policy in everything],
        input_shapes=[s for _, _, s in batch] + [input_shape(spec) for spec, _ in everything],
        threads=model.threads,
        warmup=warmup,
        repeats=repeats,
    )
    fresh = unit_times([key for key, _, _ in batch], measured[: len(batch)])
    network_ms = [m.figure_ms for m in measured[len(batch) :]]
    unit_sums = [sum(fresh[u.key] for u in units) for units in unit_lists]
    switches = [precision_transitions(u.precision for u in units) for units in unit_lists]

    fit = len(networks)
    correction = fit_correction(unit_sums[:fit], network_ms[:fit], transitions=switches[:fit])
    check = slice(fit, None) if held_out else slice(0, fit)
    validation = validation_figures(
        measured=network_ms[check],
        predicted=[correction.apply(s, transitions=n) for s, n in zip(unit_sums[check], switches[check])],
        names=[f"net{i}" for i in range(len(everything))][check],
    )
    validation |= {
        "in_sample": not held_out,
        "fit_networks": fit,
        "protocol": protocol(warmup=warmup, repeats=repeats, threads=model.threads),
        "calibration_wall_s": round(time.perf_counter() - start, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    model.update_profile(replace(model.profile.with_blocks(fresh), correction=correction, validation=validation))
    return model.profile


def protocol(*, warmup: int, repeats: int, threads: int) -> str:
    return (
        f"onnxruntime CPU, {threads} thread(s); {warmup} warm-up runs each; {repeats} rounds, every model once "
        f"per round in a fresh random order; runs beyond Q3 + {OUTLIER_IQR:g} IQR dropped; "
        f"figure = {FIGURE_PERCENTILE}th percentile of the rest"
    )


def input_shape(spec: NetSpec) -> tuple[int, int, int, int]:
    return (1, spec.in_channels, spec.input_size, spec.input_size)
