"""Where does the host latency model's error come from? One calibration-style measurement, dumped.

    python -m benchmarks.latency.diagnose                          # 40 fit + 100 held-out networks
    python -m benchmarks.latency.diagnose --fit 60 --held-out 100 --out runs/benchmarks/diag.json

Measures, as ``calibrate_correction`` does, every unit of the sampled networks and the
networks themselves interleaved in the same rounds, plus every network a SECOND time (a
second session of the same model in the same rounds), so the JSON holds the measurement
noise floor beside the data any correction is fitted on. Per network it stores the unit
times, keys, precisions, input shapes and work (MACs, activation elements), and both
network figures (the protocol's figure, median, p10, p90).

    python -m benchmarks.latency.diagnose --unit-sessions 2        # also every unit in a second session

``--unit-sessions N`` times every unit in N sessions (the first is what calibration uses;
the others are stored apart), so the analysis can also predict from the mean of a unit's
sessions: does a unit's own session-to-session speed difference limit the prediction?

    python -m benchmarks.latency.diagnose --analyse runs/benchmarks/latency_diagnose.json

re-fits offline, on the dumped fit networks only, the product's correction
(``fit_correction``: scale + intercept, plus a cost per fp32 <-> int8 switch and a scale
of the int8 units' own when leave-one-out error says so) and the simpler ones, and reports
them on the held-out networks, with one session's figure and with the mean of both
sessions (the product's protocol) as the truth, beside the noise floor (the repeat
measurement used as the prediction).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import torch

from autoc.latency.blocks import input_shape, network_units, precision_transitions, unit_batch, unit_work
from autoc.latency.calibrate import export_network, fit_correction
from autoc.latency.device import sample_networks
from autoc.latency.measure import FIGURE_PERCENTILE, measure_times, summarise
from autoc.latency.validate import format_figures, validation_figures
from autoc.space import load_space

from benchmarks.common import add_latency_dump_args, record_result


OUT = Path("runs/benchmarks/latency_diagnose.json")


def measure(args: argparse.Namespace) -> dict:
    space = load_space(args.space)
    networks = sample_networks(space, args.fit + args.held_out, seed=args.seed)
    unit_lists = [[u for u in network_units(spec, policy) if u.measurable] for spec, policy in networks]
    batch = unit_batch(u for units in unit_lists for u in units)
    onnx = [export_network(spec, policy) for spec, policy in networks]
    shapes = [input_shape(spec) for spec, _ in networks]
    start = time.perf_counter()
    load_before = os.getloadavg()
    unit_models, unit_shapes = [m for _, m, _ in batch], [s for _, _, s in batch]
    times = measure_times(
        unit_models * args.unit_sessions + onnx + onnx,
        input_shapes=unit_shapes * args.unit_sessions + shapes + shapes,
        threads=1,
        warmup=args.warmup,
        repeats=args.repeats,
    )
    measured = [summarise(row) for row in times]  # as measure_interleaved
    wall = time.perf_counter() - start
    units = {key: vars(m) for (key, _, _), m in zip(batch, measured[: len(batch)])}
    # Further sessions of every unit (--unit-sessions), timed in the same rounds.
    unit_repeats = [
        {key: vars(m) for (key, _, _), m in zip(batch, measured[s * len(batch) : (s + 1) * len(batch)])}
        for s in range(1, args.unit_sessions)
    ]
    measured = measured[: len(batch)] + measured[len(batch) * args.unit_sessions :]
    first, second = measured[len(batch) : len(batch) + len(networks)], measured[len(batch) + len(networks) :]
    rows = []
    for i, (units_of, a, b) in enumerate(zip(unit_lists, first, second)):
        rows.append({
            "name": f"net{i:03d}",
            "role": "fit" if i < args.fit else "held_out",
            "measured": vars(a),
            "repeat": vars(b),
            "units": [
                {"name": u.name, "kind": u.kind, "key": u.key, "precision": u.precision,
                 "input_shape": list(u.input_shape), "macs": unit_work(u)[0], "elements": unit_work(u)[1]}
                for u in units_of
            ],
        })
    return {
        "space": args.space, "seed": args.seed, "fit": args.fit, "held_out": args.held_out,
        "repeats": args.repeats, "warmup": args.warmup, "wall_s": round(wall, 1),
        "figure_percentile": FIGURE_PERCENTILE,
        "load_average": [list(load_before), list(os.getloadavg())],
        "unit_measurements": units, "unit_repeats": unit_repeats, "networks": rows,
        # every timed run (ms), rows in the order units, networks, repeats: other statistics offline
        "raw_ms": [[round(float(x), 5) for x in row] for row in times] if args.raw else None,
    }


def noise_summary(data: dict, *, statistic: str = "figure_ms") -> str:
    pairs = [(n["measured"][statistic], n["repeat"][statistic]) for n in data["networks"]]
    diffs = [abs(a - b) / min(a, b) for a, b in pairs]
    over = sum(d > 0.10 for d in diffs) / len(diffs)
    over5 = sum(d > 0.05 for d in diffs) / len(diffs)
    diffs.sort()
    return (f"repeat noise: {len(diffs)} networks, |a-b|/min > 10%: {100 * over:.1f}%, > 5%: {100 * over5:.1f}%, "
            f"median {100 * diffs[len(diffs) // 2]:.1f}%, max {100 * diffs[-1]:.1f}%")


def analyse(data: dict, *, statistic: str = "figure_ms") -> None:
    tables = [data["unit_measurements"], *data.get("unit_repeats", [])]
    _analyse_table(data, [_unit_ms(t, statistic) for t in tables[:1]], statistic=statistic, label="units: one session")
    if len(tables) > 1:
        _analyse_table(data, [_unit_ms(t, statistic) for t in tables], statistic=statistic,
                       label=f"units: mean of {len(tables)} sessions")


def _unit_ms(table: dict, statistic: str) -> dict[str, float]:
    empty = table["empty"][statistic]
    return {k: max(m[statistic] - empty, 0.0) for k, m in table.items()}


def _analyse_table(data: dict, tables: list[dict[str, float]], *, statistic: str, label: str) -> None:
    unit_ms = {k: float(np.mean([t[k] for t in tables])) for k in tables[0]}
    print(f"--- {label}")
    nets = data["networks"]
    sums = [sum(unit_ms[u["key"]] for u in n["units"]) for n in nets]
    int8 = [sum(unit_ms[u["key"]] for u in n["units"] if u["precision"] == "int8") for n in nets]
    switches = [precision_transitions(u["precision"] for u in n["units"]) for n in nets]
    fit = [i for i, n in enumerate(nets) if n["role"] == "fit"]
    held = [i for i, n in enumerate(nets) if n["role"] == "held_out"]
    print(f"statistic {statistic}; " + noise_summary(data, statistic=statistic))
    one = [n["measured"][statistic] for n in nets]
    repeat = [n["repeat"][statistic] for n in nets]
    floor = validation_figures(measured=[one[i] for i in held], predicted=[repeat[i] for i in held])
    print(format_figures(floor, title="noise floor (repeat measurement as the prediction)").splitlines()[0])
    recorded = {"noise floor: repeat within ±10% (%)": 100 * floor["within_10pct"],
                "noise floor: Kendall tau": floor["kendall_tau"]}
    # The product's network figure is the mean over its sessions (calibrate.NETWORK_SESSIONS = 2).
    for truth, measured in (("one session", one), ("mean of two sessions", [(a + b) / 2 for a, b in zip(one, repeat)])):
        fit_ms = [measured[i] for i in fit]
        variants = {
            "scale + intercept": fit_correction([sums[i] for i in fit], fit_ms),
            "+ per switch (LOO-chosen)": fit_correction(
                [sums[i] for i in fit], fit_ms, transitions=[switches[i] for i in fit]
            ),
            "+ int8 scale (all LOO-chosen, the product)": fit_correction(
                [sums[i] for i in fit], fit_ms, transitions=[switches[i] for i in fit], int8_sums=[int8[i] for i in fit]
            ),
        }
        for title, correction in variants.items():
            predicted = [correction.apply(sums[i], transitions=switches[i], int8_ms=int8[i]) for i in held]
            figures = validation_figures(measured=[measured[i] for i in held], predicted=predicted)
            print(f"{truth}, {title}: {correction.describe()}")
            print(format_figures(figures, title=f"  fit {len(fit)}").splitlines()[0])
        recorded[f"product correction, {truth} as the truth: Kendall tau"] = figures["kendall_tau"]
        recorded[f"product correction, {truth} as the truth: MAPE (%)"] = figures["mape_pct"]
    record_result("latency.diagnose", f"seed{data.get('seed', 'dump')}-{statistic}-{len(tables)}session",
                  title=f"Latency dump refitted offline ({label}, {len(fit)} fit / {len(held)} held out)",
                  figures=recorded)


def creation_order(args: argparse.Namespace) -> None:
    """Does a session's creation order change its speed? Two copies of every unit of ``--fit``
    networks: copy A created first, copy B after all of A, timed in the same rounds."""
    from autoc.latency.measure import _BoundRun, make_session  # the protocol's own pieces

    networks = sample_networks(load_space(args.space), args.fit, seed=args.seed)
    batch = unit_batch(u for spec, policy in networks for u in network_units(spec, policy) if u.measurable)
    models, shapes = [m for _, m, _ in batch] * 2, [s for _, _, s in batch] * 2
    rng = np.random.default_rng(0)
    runs = [_BoundRun(make_session(m), rng.standard_normal(s, dtype=np.float32)) for m, s in zip(models, shapes)]
    for _ in range(args.warmup):
        for run in runs:
            run()
    times = np.empty((len(runs), args.repeats))
    for r in range(args.repeats):
        for i in rng.permutation(len(runs)):
            start = time.perf_counter_ns()
            runs[i]()
            times[i, r] = (time.perf_counter_ns() - start) / 1e6
    figures = np.array([summarise(row).figure_ms for row in times])
    ratio = figures[: len(batch)] / figures[len(batch) :]
    print(f"{len(batch)} units x 2 copies, load {os.getloadavg()}: copy created first / copy created later: "
          f"mean {ratio.mean():.3f}, median {np.median(ratio):.3f}, sums {figures[:len(batch)].sum() / figures[len(batch):].sum():.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_latency_dump_args(parser)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--raw", action="store_true", help="also store every timed run")
    parser.add_argument("--unit-sessions", type=int, default=1,
                        help="time every unit in this many sessions (the first is the table; the others are stored apart)")
    parser.add_argument("--creation-order", action="store_true",
                        help="instead: time two copies of --fit networks' units, created first and last")
    parser.add_argument("--statistic", default="figure_ms", choices=("figure_ms", "p10_ms", "median_ms"),
                        help="with --analyse: which per-model figure of the dump to fit and score")
    parser.add_argument("--analyse", type=Path, default=None, metavar="JSON", help="re-fit a dump offline, measure nothing")
    args = parser.parse_args(argv)
    if args.analyse is not None:
        analyse(json.loads(args.analyse.read_text(encoding="utf-8")), statistic=args.statistic)
        return 0
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.creation_order:
        creation_order(args)
        return 0
    data = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(data['unit_measurements'])} units, {len(data['networks'])} networks, "
          f"{data['wall_s']} s, load {data['load_average']}")
    print(noise_summary(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
