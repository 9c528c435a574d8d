"""Fit the whole-network correction of a lookup-table model and record how well it predicts.

Isolated units miss what only a whole network has (one session call, layout reorders and
int8 Q/DQ at fewer boundaries, caches shared by all the weights), so sampled networks are
measured end to end, interleaved with all their units in the same rounds (this machine's
speed drifts by tens of percent over minutes: units and networks must share the drift),
and ``measured = scale * unit_sum + intercept + ms_per_transition * transitions`` is fitted
on them, int8 units with a scale of their own where leave-one-out error supports one
(transitions: fp32 <-> int8 switches between consecutive units; on this project's host
they were the largest error left by scale and intercept alone, see
benchmarks.latency.diagnose). Each network is timed in NETWORK_SESSIONS sessions.
Before that, each unit's table time is turned into its in-network time by a per-unit model
learnt from the prefixes of the first PREFIX_NETWORKS fitting networks, timed in the same
rounds (``autoc.latency.in_context``). Held-out networks, measured in the same rounds but
never used in the fit, give the validation figures.
"""
from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from autoc.arch.builder import build_model
from autoc.arch.netspec import NetSpec
from autoc.arch.policy import CompressionPolicy
from autoc.errors import DeviceError
from autoc.onnx.export import policy_int8_layers
from autoc.latency.blocks import (EMPTY, Unit, input_shape, network_units, precision_transitions, unit_batch,
                                  unit_times)
from autoc.latency.in_context import (InContextModel, fit_in_context, in_context_targets, prefix_models,
                                      unit_features)
from autoc.latency.measure import FIGURE_PERCENTILE, OUTLIER_IQR, Measurement, measure_interleaved
from autoc.latency.model import LookupTableLatencyModel
from autoc.latency.profile import Correction, DeviceProfile
from autoc.latency.runtimes import ORT, Runtime, runtime as runtime_named
from autoc.latency.validate import validation_figures

Network = tuple[NetSpec, CompressionPolicy]
log = logging.getLogger("autoc.latency")

NETWORK_WARMUP = 5
NETWORK_REPEATS = 60
# Each network is timed in this many ORT sessions (created at random points among the
# others, timed in the same rounds) and its figure is their mean. One session of a model
# can run a few percent faster or slower than another for its whole life (memory placement;
# benchmarks.latency.diagnose times every network in two: they differ by a median 1-2 %
# at load 1); the mean is what a deployed model runs on average. On this project's host it
# raised held-out Kendall tau from 0.888 to 0.903 (one dump, 40 fit + 100 held-out).
NETWORK_SESSIONS = 2
# Two sessions of one network differ by a median ~1% on a quiet machine here and ~6% at
# load 3.4 (benchmarks.latency.diagnose); beyond this the measurement is called noisy.
NOISY_SESSION_SPREAD = 0.03
# Fitting networks whose prefixes are timed for the in-context unit model (autoc.latency.in_context):
# each adds ~17 models to export and time; offline on two 40-network dumps, 16 did as well
# as 40 (held-out tau 0.906 / 0.903 vs 0.900 / 0.903; 8 networks: 0.906 / 0.889).
PREFIX_NETWORKS = 16
# Below this many fitting networks an intercept is not identifiable from noise: scale only.
MIN_NETWORKS_FOR_INTERCEPT = 8
# A third coefficient (cost per fp32 <-> int8 switch) needs a few more.
MIN_NETWORKS_FOR_TRANSITIONS = 12
# A separate int8 scale (third or fourth coefficient) likewise.
MIN_NETWORKS_FOR_PRECISION_SCALES = 16


def export_network(spec: NetSpec, policy: CompressionPolicy, runtime: Runtime = ORT) -> bytes:
    """The network as the device would run it in ``runtime``: int8 where ``policy`` says int8 (random calibration)."""
    return runtime.export(
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
    """End-to-end latency figure (ms) of each network: the mean over NETWORK_SESSIONS sessions, measured interleaved."""
    models = [export_network(spec, policy) for spec, policy in networks]
    shapes = [input_shape(spec) for spec, _ in networks]
    results = measure_interleaved(
        models * NETWORK_SESSIONS, input_shapes=shapes * NETWORK_SESSIONS, threads=threads, warmup=warmup, repeats=repeats
    )
    return session_means(results, networks=len(networks))


def session_means(results: Sequence[Measurement], *, networks: int) -> list[float]:
    """Per network, the mean figure of its sessions (``results``: all networks once per session, in order)."""
    return [statistics.fmean(figures) for figures in _by_network(results, networks)]


def session_spreads(results: Sequence[Measurement], *, networks: int) -> list[float]:
    """Per network, (slowest - fastest session) / mean: how far one measurement can be trusted."""
    return [(max(f) - min(f)) / statistics.fmean(f) for f in _by_network(results, networks)]


def _by_network(results: Sequence[Measurement], networks: int) -> list[list[float]]:
    sessions = len(results) // networks if networks else 0
    if networks == 0 or sessions * networks != len(results):
        raise ValueError(f"{len(results)} measurements are not whole sessions of {networks} networks")
    return [[results[s * networks + i].figure_ms for s in range(sessions)] for i in range(networks)]


def noise_figures(spreads: Sequence[float]) -> dict[str, float | bool]:
    """The sessions' disagreement as validation figures; ``noisy`` when it is beyond a quiet machine's."""
    median = float(np.median(spreads)) if len(spreads) else 0.0
    return {
        "session_spread_median_pct": round(100 * median, 2),
        "session_spread_p90_pct": round(100 * float(np.percentile(spreads, 90)), 2) if len(spreads) else 0.0,
        "noisy": median > NOISY_SESSION_SPREAD,
    }


def fit_correction(
    unit_sums: Sequence[float],
    measured: Sequence[float],
    *,
    transitions: Sequence[int] | None = None,
    int8_sums: Sequence[float] | None = None,
) -> Correction:
    """The correction minimising the squared *relative* error (the figure that counts).

    Candidates: ``scale * sum + intercept``; given ``transitions`` (fp32 <-> int8 switches
    per network) with enough networks, the same plus ``ms_per_transition * transitions``;
    given ``int8_sums`` (the int8 units' part of each unit sum), each of those with the int8
    part scaled apart. The one with the lowest leave-one-out relative error wins, so a term
    the fitting networks cannot support is left out. With few networks, or when no fit
    is plausible (a scale <= 0, a negative transition cost, a non-positive fitted time),
    only the scale is fitted: the median ratio measured / unit sum.
    """
    sums, ms = np.asarray(unit_sums, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if len(ms) == 0 or np.any(ms <= 0):
        raise ValueError("fit_correction needs at least one network with a positive measured time")
    best, best_error = None, np.inf
    for terms, design in _candidate_designs(sums, transitions, int8_sums):
        coefficients, loo_error = _relative_least_squares(design, ms)
        fitted = dict(zip(terms, map(float, coefficients)))
        plausible = (
            fitted["scale"] > 0
            and fitted.get("int8_scale", 1.0) > 0
            and fitted.get("ms_per_transition", 0.0) >= 0
            and np.all(design @ coefficients > 0)
        )
        if plausible and loo_error < best_error:
            best, best_error = fitted, loo_error
    if best is not None:
        return Correction(**best)
    positive = sums > 0
    scale = statistics.median(ms[positive] / sums[positive]) if positive.any() else 1.0
    return Correction(scale=float(scale), intercept_ms=0.0)


def _candidate_designs(
    sums: np.ndarray, transitions: Sequence[int] | None, int8_sums: Sequence[float] | None
) -> list[tuple[tuple[str, ...], np.ndarray]]:
    """(Correction field names, design matrix) of every correction the networks can identify."""
    n = len(sums)
    if n < MIN_NETWORKS_FOR_INTERCEPT or np.ptp(sums) == 0:
        return []
    switches = np.asarray(transitions if transitions is not None else [], dtype=np.float64)
    int8 = np.asarray(int8_sums if int8_sums is not None else [], dtype=np.float64)
    with_switches = len(switches) == n >= MIN_NETWORKS_FOR_TRANSITIONS and np.ptp(switches) > 0
    # Two scales need networks whose int8 share differs, and not all-int8 ones only.
    with_int8 = len(int8) == n >= MIN_NETWORKS_FOR_PRECISION_SCALES and np.ptp(int8) > 0 and np.ptp(sums - int8) > 0
    bases = [(("scale", "intercept_ms"), [sums, np.ones(n)])]
    if with_int8:
        bases.append((("scale", "int8_scale", "intercept_ms"), [sums - int8, int8, np.ones(n)]))
    designs = []
    for terms, columns in bases:
        designs.append((terms, np.column_stack(columns)))
        if with_switches:
            designs.append(((*terms, "ms_per_transition"), np.column_stack([*columns, switches])))
    return designs


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
    in_context: bool = True,
) -> DeviceProfile:
    """Measure units and networks interleaved, fit the correction on ``networks``; save and return the profile.

    With ``in_context`` every prefix of each fitting network is timed too and the profile
    gets an in-context unit model (``autoc.latency.in_context``) fitted on them; the
    correction is then fitted on the networks' in-context unit sums.

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
    runtime = runtime_named(model.profile.identity.runtime)
    runtime.check()
    everything = [*networks, *held_out]
    all_units = [network_units(spec, policy) for spec, policy in everything]
    unit_lists = [[u for u in units if u.measurable] for units in all_units]
    batch = unit_batch((u for units in unit_lists for u in units), runtime)
    whole_models = [export_network(spec, policy, runtime) for spec, policy in everything]
    # Prefixes of the fitting networks (see autoc.latency.in_context), timed in the same rounds.
    prefixed = networks[:PREFIX_NETWORKS] if in_context else []
    prefixes = [prefix_models(spec, policy, units, runtime) for (spec, policy), units in zip(prefixed, all_units)]
    prefix_shapes = [input_shape(spec) for (spec, _), models in zip(prefixed, prefixes) for _ in models]
    flat_prefixes = [m for models in prefixes for m in models]
    measured = runtime.measure(
        [m for _, m, _ in batch] + flat_prefixes + whole_models * NETWORK_SESSIONS,
        input_shapes=[s for _, _, s in batch] + prefix_shapes + [input_shape(spec) for spec, _ in everything] * NETWORK_SESSIONS,
        threads=model.threads,
        warmup=warmup,
        repeats=repeats,
    )
    keys = [key for key, _, _ in batch]
    fresh = unit_times(keys, measured[: len(batch)])
    whole = measured[len(batch) + len(flat_prefixes) :]
    network_ms = session_means(whole, networks=len(everything))
    noise = noise_figures(session_spreads(whole, networks=len(everything)))
    prefix_iter = iter(m.figure_ms for m in measured[len(batch) : len(batch) + len(flat_prefixes)])
    if noise["noisy"]:
        log.warning(
            "latency measurements were noisy: two sessions of one network differ by a median %.1f%% (a quiet "
            "machine: ~1%%); the profile's figures may be off; calibrate again when the machine is quieter",
            noise["session_spread_median_pct"],
        )
    result = fit_calibration(
        unit_lists,
        table=fresh,
        empty_ms=measured[keys.index(EMPTY)].figure_ms,
        network_ms=network_ms,
        fit=len(networks),
        prefix_ms=[[next(prefix_iter) for _ in models] for models in prefixes],
        held_out=bool(held_out),
    )
    correction, unit_model, validation = result.correction, result.unit_model, dict(result.validation)
    validation |= noise | {
        "in_sample": not held_out,
        "fit_networks": len(networks),
        "in_context_units": sum(len(units) for units in unit_lists[: len(prefixed)]) if unit_model is not None else 0,
        "protocol": protocol(warmup=warmup, repeats=repeats, threads=model.threads, runtime=runtime),
        "calibration_wall_s": round(time.perf_counter() - start, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    model.update_profile(
        replace(model.profile.with_blocks(fresh), correction=correction, in_context=unit_model, validation=validation)
    )
    return model.profile


@dataclass(frozen=True)
class CalibrationFit:
    """What calibration learns from its measurements, and the held-out figures of it."""

    correction: Correction
    unit_model: InContextModel | None
    validation: dict


def fit_calibration(
    unit_lists: Sequence[Sequence[Unit]],
    *,
    table: Mapping[str, float],
    empty_ms: float,
    network_ms: Sequence[float],
    fit: int,
    prefix_ms: Sequence[Sequence[float]] = (),
    held_out: bool,
) -> CalibrationFit:
    """Fit the in-context unit model (when ``prefix_ms`` holds the prefix times of the first
    fitting networks) and the correction on the first ``fit`` networks; validate on the rest
    when ``held_out``, else on the fitting networks. Pure: calibration measures, this learns,
    and benchmarks refit dumped measurements with it (benchmarks.latency.in_context).

    ``unit_lists``: each network's measurable units; ``table``: unit times net of the empty
    graph; ``network_ms``: each network's measured time.
    """
    unit_model = None
    if prefix_ms:
        unit_model = fit_unit_model(unit_lists[: len(prefix_ms)], prefix_ms=prefix_ms,
                                    network_ms=network_ms[: len(prefix_ms)], table=table, empty_ms=empty_ms)
    check = slice(fit, None) if held_out else slice(0, fit)
    names = [f"net{i}" for i in range(len(unit_lists))][check]
    switches = [precision_transitions(u.precision for u in units) for units in unit_lists]

    def fitted(units_model: InContextModel | None) -> tuple[Correction, dict]:
        """The correction fitted on the fitting networks' unit sums under ``units_model``, and its figures."""
        unit_ms = [network_unit_ms(units, table=table, unit_model=units_model) for units in unit_lists]
        sums = [sum(times) for times in unit_ms]
        int8 = [sum(t for u, t in zip(units, times) if u.precision == "int8") for units, times in zip(unit_lists, unit_ms)]
        fitted_correction = fit_correction(sums[:fit], network_ms[:fit], transitions=switches[:fit], int8_sums=int8[:fit])
        return fitted_correction, validation_figures(
            measured=list(network_ms[check]),
            predicted=[fitted_correction.apply(s, transitions=n, int8_ms=i)
                       for s, n, i in zip(sums[check], switches[check], int8[check])],
            names=names,
        )

    correction, validation = fitted(unit_model)
    if unit_model is not None:  # the same networks predicted without it, side by side
        _, plain = fitted(None)
        validation["without_in_context"] = {k: plain[k] for k in ("within_10pct", "mape_pct", "kendall_tau")}
    return CalibrationFit(correction=correction, unit_model=unit_model, validation=validation)


def fit_unit_model(
    unit_lists: Sequence[Sequence[Unit]],
    *,
    prefix_ms: Sequence[Sequence[float]],
    network_ms: Sequence[float],
    table: Mapping[str, float],
    empty_ms: float,
) -> InContextModel | None:
    """The in-context model from the fitting networks' measurable units and prefix times (host: int8 kernels)."""
    rows = []
    for units, prefixes, total in zip(unit_lists, prefix_ms, network_ms):
        targets = in_context_targets(units, prefix_ms=prefixes, network_ms=total, empty_ms=empty_ms)
        rows.extend(zip(_host_features(units, table), targets))
    return fit_in_context(rows)


def network_unit_ms(
    units: Sequence[Unit], *, table: Mapping[str, float], unit_model: InContextModel | None
) -> list[float]:
    """Each measurable unit's time as the model predicts it: in-context where there is a unit model."""
    if unit_model is None:
        return [table[u.key] for u in units]
    return [unit_model.ms_of(features) for features in _host_features(units, table)]


def _host_features(units: Sequence[Unit], table: Mapping[str, float]) -> list[list[float]]:
    """Each measurable unit's in-context features, in network order (this host runs int8 kernels)."""
    features, previous = [], None
    for unit in units:
        int8 = unit.precision == "int8"
        features.append(unit_features(unit, isolated_ms=table[unit.key], int8=int8, previous_int8=previous))
        previous = int8
    return features


def protocol(*, warmup: int, repeats: int, threads: int, runtime: Runtime = ORT) -> str:
    """How a calibration measured, in words, as recorded with the profile."""
    return (
        f"{runtime.describe(threads)}; {warmup} warm-up runs each; {repeats} rounds, every model once "
        f"per round in a fresh random order; runs beyond Q3 + {OUTLIER_IQR:g} IQR dropped; "
        f"figure = {FIGURE_PERCENTILE}th percentile of the rest; a network's figure = mean over "
        f"{NETWORK_SESSIONS} sessions of it"
    )
