"""What does a unit cost inside a network, against its isolated lookup-table time?

For each of ``--fit`` sampled networks, every prefix (stem, stem + first block, ...) is
exported and timed together with every unit in isolation and every whole network (two
sessions), all interleaved in the same rounds as calibration does. A unit's in-context
cost is the difference between the prefix that ends with it and the one before (the head's:
the whole network minus the longest prefix). The dump (``--out``) holds, per unit, its
isolated time, in-context cost and features, so an analysis can learn how the in-network
cost departs from the isolated one per unit (hundreds of targets) instead of per network
(a few dozen), and check the learnt correction on ``--held-out`` networks measured in the
same run but never prefixed.

    python benchmarks/latency_in_context.py                     # 40 fit + 100 held-out
    python benchmarks/latency_in_context.py --analyse runs/benchmarks/latency_in_context.json

With ``--sessions S`` (more than the product's NETWORK_SESSIONS) every whole network is
timed in S sessions, kept apart in the dump, and the analysis also reports what fitting and
validating on the mean of the first k sessions gives for k = 1..S, and against the mean of
all S as the truth: whether a less noisy measured time, not a better model, is what the
held-out figures lack. ``--prefixed P`` prefixes only the first P fitting networks (the
product prefixes PREFIX_NETWORKS).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import torch

from autoc.latency.blocks import EMPTY, input_shape, network_units, precision_transitions, unit_batch, unit_work
from autoc.latency.calibrate import NETWORK_SESSIONS, export_network, fit_correction
from autoc.latency.device import sample_networks
from autoc.latency.in_context import prefix_models
from autoc.latency.measure import measure_interleaved
from autoc.latency.validate import format_figures, validation_figures
from autoc.space import load_space

OUT = Path("runs/benchmarks/latency_in_context.json")


def measure(args: argparse.Namespace) -> dict:
    space = load_space(args.space)
    networks = sample_networks(space, args.fit + args.held_out, seed=args.seed)
    unit_lists = [network_units(spec, policy) for spec, policy in networks]
    batch = unit_batch(u for units in unit_lists for u in units)
    prefix_list, prefix_owner = [], []
    prefixed = args.fit if args.prefixed is None else min(args.prefixed, args.fit)
    for n, ((spec, policy), units) in enumerate(zip(networks[:prefixed], unit_lists)):
        for model in prefix_models(spec, policy, units):  # the product's prefixes (autoc.latency.in_context)
            prefix_list.append(model)
            prefix_owner.append(n)
    whole = [export_network(spec, policy) for spec, policy in networks]
    shapes = [input_shape(spec) for spec, _ in networks]
    start = time.perf_counter()
    measured = measure_interleaved(
        [m for _, m, _ in batch] + prefix_list + whole * args.sessions,
        input_shapes=[s for _, _, s in batch] + [shapes[n] for n in prefix_owner] + shapes * args.sessions,
        threads=1, warmup=args.warmup, repeats=args.repeats,
    )
    wall = time.perf_counter() - start
    unit_ms = {key: m.figure_ms for (key, _, _), m in zip(batch, measured)}
    prefix_ms = [m.figure_ms for m in measured[len(batch) : len(batch) + len(prefix_list)]]
    sessions = measured[len(batch) + len(prefix_list) :]
    session_ms = [[sessions[s * len(networks) + i].figure_ms for s in range(args.sessions)] for i in range(len(networks))]
    rows = []
    for n, ((spec, policy), units) in enumerate(zip(networks, unit_lists)):
        prefixes = [ms for owner, ms in zip(prefix_owner, prefix_ms) if owner == n]
        rows.append({
            "role": "fit" if n < args.fit else "held_out",
            # the product's figure (the mean of its NETWORK_SESSIONS sessions); all of them beside
            "measured_ms": statistics.fmean(session_ms[n][:NETWORK_SESSIONS]),
            "sessions": session_ms[n],
            "prefix_ms": prefixes,
            "units": [{"key": u.key, "kind": u.kind, "precision": u.precision, "input_shape": list(u.input_shape),
                       "macs": unit_work(u)[0], "elements": unit_work(u)[1],
                       "convs": [[c.kernel, c.stride, c.cin, c.cout, c.groups] for c in u.convs],
                       "residual": bool(u.block is not None and u.block.residual)} for u in units],
        })
    return {"space": args.space, "seed": args.seed, "repeats": args.repeats, "wall_s": round(wall, 1),
            "load_average": list(os.getloadavg()), "empty_ms": unit_ms[EMPTY], "unit_ms": unit_ms, "networks": rows}


def in_context_costs(network: dict, unit_ms: dict[str, float], empty: float) -> list[tuple[dict, float, float]]:
    """(unit, isolated ms, in-context ms) for every measured unit of a prefixed network, in order."""
    units, prefixes = network["units"], network["prefix_ms"]
    if len(prefixes) == len(units) - 1:  # an early dump: a prefix after every block, skipped ones too
        prefixes = [ms for unit, ms in zip(units, prefixes) if unit["key"] != "identity"]
    measured = [u for u in units if u["key"] != "identity"]
    ends = [*prefixes, network["measured_ms"]]
    return [(unit, unit_ms[unit["key"]] - empty, end - start)
            for unit, start, end in zip(measured, [empty, *ends[:-1]], ends)]


def features(unit: dict, previous: dict | None, isolated: float) -> list[float]:
    """What could make a unit's in-network cost differ from its isolated one (all per unit)."""
    c, h = unit["input_shape"][1], unit["input_shape"][2]
    out_c = unit["convs"][-1][3] if unit["convs"] else c
    stride = int(np.prod([conv[1] for conv in unit["convs"]])) if unit["convs"] else 1
    int8 = unit["precision"] == "int8"
    switch = previous is not None and previous["precision"] != unit["precision"]
    return [
        isolated,
        isolated * int8,
        1.0,  # a fixed per-unit overhead (layout reorders, Q/DQ of an isolated unit)
        float(int8),
        float(switch),
        c * h * h / 1e5,  # input elements
        out_c * (h // stride) ** 2 / 1e5,  # output elements
        float(unit["kind"] == "head"),
        float(unit["kind"] == "stem"),
        float(unit["residual"]),
    ]


def unit_targets(fit: list[dict], unit_ms: dict[str, float], empty: float) -> tuple[np.ndarray, np.ndarray]:
    """Features and in-context times of every measured unit of the prefixed fitting networks."""
    x, y = [], []
    for n in fit:
        if not n["prefix_ms"]:  # fitted by the correction only, not prefixed
            continue
        previous = None
        for unit, isolated, in_context in in_context_costs(n, unit_ms, empty):
            x.append(features(unit, previous, isolated))
            y.append(in_context)
            previous = unit
    return np.array(x), np.array(y)


def unit_model_sum(n: dict, coef: np.ndarray, unit_ms: dict[str, float], empty: float) -> float:
    """A network's unit times under the unit model ``coef``, summed (plus the empty graph's time)."""
    total, previous = 0.0, None
    for unit in n["units"]:
        if unit["key"] == "identity":
            continue
        total += float(np.dot(features(unit, previous, unit_ms[unit["key"]] - empty), coef))
        previous = unit
    return total + empty


def switches(group: list[dict]) -> list[int]:
    return [precision_transitions(u["precision"] for u in n["units"] if u["key"] != "identity") for n in group]


def product_predictions(data: dict) -> tuple[list[dict], list[float]]:
    """The held-out networks and their predictions by the unit model, then the correction (the
    product's pipeline), both fitted on the fitting networks' ``measured_ms``."""
    unit_ms, empty = data["unit_ms"], data["empty_ms"]
    fit = [n for n in data["networks"] if n["role"] == "fit"]
    held = [n for n in data["networks"] if n["role"] == "held_out"]
    coef, *_ = np.linalg.lstsq(*unit_targets(fit, unit_ms, empty), rcond=None)
    correction = fit_correction([unit_model_sum(n, coef, unit_ms, empty) for n in fit], [n["measured_ms"] for n in fit],
                                transitions=switches(fit))
    return held, [correction.apply(unit_model_sum(n, coef, unit_ms, empty), transitions=t) for n, t in zip(held, switches(held))]


def analyse(data: dict) -> None:
    unit_ms, empty = data["unit_ms"], data["empty_ms"]
    nets = data["networks"]
    fit = [n for n in nets if n["role"] == "fit"]
    held = [n for n in nets if n["role"] == "held_out"]
    x, y = unit_targets(fit, unit_ms, empty)
    ratio = y / x[:, 0]
    print(f"{len(y)} fitted units: in-context / isolated median {np.median(ratio):.3f}, "
          f"IQR {np.percentile(ratio, 25):.3f}-{np.percentile(ratio, 75):.3f}")
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ coef
    print(f"unit model: rms residual {1e3 * np.sqrt(np.mean(residual ** 2)):.1f} us (units' rms {1e3 * np.sqrt(np.mean(y ** 2)):.1f} us); "
          f"coefficients {np.round(coef, 4).tolist()}")
    measured = [n["measured_ms"] for n in held]
    figures = validation_figures(measured=measured, predicted=[unit_model_sum(n, coef, unit_ms, empty) for n in held])
    print(format_figures(figures, title="  unit model only").splitlines()[0])
    # the correction alone on isolated unit sums (as before the unit model), int8 scale allowed
    isolated = lambda g: [sum(unit_ms[u["key"]] - empty for u in n["units"] if u["key"] != "identity") for n in g]  # noqa: E731
    int8 = lambda g: [sum(unit_ms[u["key"]] - empty for u in n["units"] if u["precision"] == "int8" and u["key"] != "identity") for n in g]  # noqa: E731
    correction = fit_correction(isolated(fit), [n["measured_ms"] for n in fit], transitions=switches(fit), int8_sums=int8(fit))
    predicted = [correction.apply(s, transitions=t, int8_ms=i) for s, t, i in zip(isolated(held), switches(held), int8(held))]
    print(f"  isolated units (the correction alone, as before the unit model): {correction.describe()}")
    print(format_figures(validation_figures(measured=measured, predicted=predicted), title="    ").splitlines()[0])
    _, predicted = product_predictions(data)
    print("  unit model, then the correction (the product, autoc.latency.in_context)")
    print(format_figures(validation_figures(measured=measured, predicted=predicted), title="    ").splitlines()[0])
    if len(nets[0].get("sessions", [])) > NETWORK_SESSIONS:
        analyse_sessions(data)


def analyse_sessions(data: dict) -> None:
    """Held-out figures when every network's time is the mean of its first k sessions (fit and
    truth alike), and against the mean of all sessions as the truth; the session-to-session
    noise, and the noise floor (one half of the sessions against the other)."""
    nets = data["networks"]
    count = len(nets[0]["sessions"])
    spread = [statistics.stdev(n["sessions"]) / statistics.fmean(n["sessions"]) for n in nets]
    print(f"{count} sessions per network: session-to-session stdev median {100 * np.median(spread):.2f}%, "
          f"p90 {100 * np.percentile(spread, 90):.2f}%")
    held = [n for n in nets if n["role"] == "held_out"]
    truth = [statistics.fmean(n["sessions"]) for n in held]
    halves = validation_figures(measured=[statistics.fmean(n["sessions"][: count // 2]) for n in held],
                                predicted=[statistics.fmean(n["sessions"][count // 2 :]) for n in held])
    print(f"  noise floor, first {count // 2} sessions' mean as the prediction of the other {count - count // 2}: "
          f"tau {halves['kendall_tau']:.3f}")
    for k in range(1, count + 1):
        subset = {**data, "networks": [{**n, "measured_ms": statistics.fmean(n["sessions"][:k])} for n in nets]}
        held_k, predicted = product_predictions(subset)
        own = validation_figures(measured=[n["measured_ms"] for n in held_k], predicted=predicted)
        full = validation_figures(measured=truth, predicted=predicted)
        print(f"  mean of {k} session(s): tau {own['kendall_tau']:.3f}, MAPE {own['mape_pct']:.2f}%; "
              f"against all {count}: tau {full['kendall_tau']:.3f}, MAPE {full['mape_pct']:.2f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mbv2-cifar")
    parser.add_argument("--fit", type=int, default=40)
    parser.add_argument("--held-out", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sessions", type=int, default=NETWORK_SESSIONS,
                        help="sessions per whole network, kept apart in the dump (default: the product's %(default)s)")
    parser.add_argument("--prefixed", type=int, default=None, help="prefix only the first P fitting networks (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--analyse", type=Path, default=None, metavar="JSON")
    args = parser.parse_args(argv)
    if args.analyse is not None:
        analyse(json.loads(args.analyse.read_text(encoding="utf-8")))
        return 0
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(data['networks'])} networks, {data['wall_s']} s, load {data['load_average']}")
    analyse(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
