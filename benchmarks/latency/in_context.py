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

    python -m benchmarks.latency.in_context                     # 40 fit + 100 held-out
    python -m benchmarks.latency.in_context --analyse runs/benchmarks/latency_in_context.json

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

from autoc.latency.blocks import EMPTY, IDENTITY, Unit, input_shape, network_units, unit_batch, unit_work
from autoc.latency.calibrate import NETWORK_SESSIONS, CalibrationFit, export_network, fit_calibration
from autoc.latency.device import sample_networks
from autoc.latency.in_context import FEATURES, in_context_targets, prefix_models
from autoc.latency.measure import measure_interleaved
from autoc.latency.validate import format_figures, validation_figures
from autoc.space import load_space

from benchmarks.common import add_latency_dump_args, record_result


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


def measured_units(data: dict) -> list[list[Unit]]:
    """The dumped networks' measurable units, rebuilt from the dump's space and seed (as calibration has them)."""
    networks = sample_networks(load_space(data.get("space", "mbv2-cifar")), len(data["networks"]), seed=data["seed"])
    unit_lists = [[u for u in network_units(spec, policy) if u.measurable] for spec, policy in networks]
    for n, (units, row) in enumerate(zip(unit_lists, data["networks"])):
        if [u.key for u in units] != [u["key"] for u in row["units"] if u["key"] != IDENTITY]:
            raise SystemExit(f"network {n} of the dump is not network {n} of seed {data['seed']}: "
                             "was it taken with another space or an older unit model?")
    return unit_lists


def prefix_times(row: dict) -> list[float]:
    """A prefixed network's prefix times, one per measurable unit before the head."""
    prefixes = row["prefix_ms"]
    if len(prefixes) == len(row["units"]) - 1:  # an early dump: a prefix after every block, skipped ones too
        prefixes = [ms for unit, ms in zip(row["units"], prefixes) if unit["key"] != IDENTITY]
    return prefixes


def refit(data: dict, unit_lists: list[list[Unit]], *, network_ms: list[float]) -> CalibrationFit:
    """The product's calibration fit (autoc.latency.calibrate.fit_calibration) on the dumped measurements."""
    rows = data["networks"]
    empty = data["empty_ms"]
    return fit_calibration(
        unit_lists,
        table={key: ms - empty for key, ms in data["unit_ms"].items() if key != EMPTY},
        empty_ms=empty,
        network_ms=network_ms,
        fit=sum(row["role"] == "fit" for row in rows),
        prefix_ms=[prefix_times(row) for row in rows if row["prefix_ms"]],
        held_out=True,
    )


def analyse(data: dict) -> None:
    unit_lists = measured_units(data)
    rows = data["networks"]
    prefixed = sum(bool(row["prefix_ms"]) for row in rows)
    result = refit(data, unit_lists, network_ms=[row["measured_ms"] for row in rows])
    targets = [t for units, row in zip(unit_lists, rows[:prefixed])
               for t in in_context_targets(units, prefix_ms=prefix_times(row), network_ms=row["measured_ms"],
                                           empty_ms=data["empty_ms"])]
    print(f"{len(targets)} units of {prefixed} prefixed networks; the product's fit on them "
          f"(autoc.latency.calibrate.fit_calibration), {len(rows) - sum(r['role'] == 'held_out' for r in rows)} fitting networks:")
    if result.unit_model is None:
        print("  no in-context unit model (too few units or an implausible fit)")
    else:
        print(f"  unit model coefficients {dict(zip(FEATURES, np.round(result.unit_model.coefficients, 4).tolist()))}")
        plain = result.validation["without_in_context"]
        print(f"  without it (the correction alone): {100 * plain['within_10pct']:.1f}% within +-10%, "
              f"MAPE {plain['mape_pct']:.2f}%, Kendall tau {plain['kendall_tau']:.3f}")
    print(format_figures(result.validation, title=f"  with it (the product; correction {result.correction.describe()})")
          .splitlines()[0])
    without = result.validation.get("without_in_context", {})
    record_result("latency.in_context", f"seed{data.get('seed', 'dump')}-prefixed{prefixed}",
                  title=f"In-context unit model refitted on a dump ({prefixed} prefixed networks)",
                  figures={"within ±10% (%)": 100 * result.validation["within_10pct"],
                           "MAPE (%)": result.validation["mape_pct"], "Kendall tau": result.validation["kendall_tau"],
                           "Kendall tau without the unit model": without.get("kendall_tau")})
    if len(rows[0].get("sessions", [])) > NETWORK_SESSIONS:
        analyse_sessions(data, unit_lists)


def analyse_sessions(data: dict, unit_lists: list[list[Unit]]) -> None:
    """Held-out figures when every network's time is the mean of its first k sessions (fit and
    truth alike), and against the mean of all sessions as the truth; the session-to-session
    noise, and the noise floor (one half of the sessions against the other)."""
    rows = data["networks"]
    count = len(rows[0]["sessions"])
    spread = [statistics.stdev(row["sessions"]) / statistics.fmean(row["sessions"]) for row in rows]
    print(f"{count} sessions per network: session-to-session stdev median {100 * np.median(spread):.2f}%, "
          f"p90 {100 * np.percentile(spread, 90):.2f}%")
    held = [row for row in rows if row["role"] == "held_out"]
    truth = [statistics.fmean(row["sessions"]) for row in held]
    halves = validation_figures(measured=[statistics.fmean(row["sessions"][: count // 2]) for row in held],
                                predicted=[statistics.fmean(row["sessions"][count // 2 :]) for row in held])
    print(f"  noise floor, first {count // 2} sessions' mean as the prediction of the other {count - count // 2}: "
          f"tau {halves['kendall_tau']:.3f}")
    for k in range(1, count + 1):
        own = refit(data, unit_lists, network_ms=[statistics.fmean(row["sessions"][:k]) for row in rows]).validation
        full = validation_figures(measured=truth, predicted=[n["predicted_ms"] for n in own["networks"]])
        print(f"  mean of {k} session(s): tau {own['kendall_tau']:.3f}, MAPE {own['mape_pct']:.2f}%; "
              f"against all {count}: tau {full['kendall_tau']:.3f}, MAPE {full['mape_pct']:.2f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_latency_dump_args(parser)
    parser.add_argument("--sessions", type=int, default=NETWORK_SESSIONS,
                        help="sessions per whole network, kept apart in the dump (default: the product's %(default)s)")
    parser.add_argument("--prefixed", type=int, default=None, help="prefix only the first P fitting networks (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--analyse", type=Path, default=None, metavar="JSON")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.analyse is not None:
        analyse(json.loads(args.analyse.read_text(encoding="utf-8")))
        return 0
    torch.set_num_threads(1)
    data = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(data['networks'])} networks, {data['wall_s']} s, load {data['load_average']}")
    analyse(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
