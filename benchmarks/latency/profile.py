"""Where does a network's time go, unit by unit, against its units timed alone? (ONNX Runtime's profiler.)

For each chosen network of ``--space`` (the ``--seed`` sample of latency.accuracy, so
``net129`` there is ``--networks 129`` here), the whole network and each of its units are run
``--repeats`` rounds, interleaved, under ONNX Runtime's per-node profiler (the session options
calibration uses). Each compute node is assigned to the unit its name's scope names
(``/stages.1.0/dw/...``); per unit the median in-network compute time is set beside the
isolated one. Layout and Q/DQ nodes (reorders, transposes, (de)quantisation) are summed per op
type apart, with their count: the profiler adds a few µs to every node, which for these small
nodes is most of what it reports, so it shows where they are, not what they cost.

    python -m benchmarks.latency.profile --networks 129 81
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import optuna

from autoc.latency.blocks import export_unit, input_shape, network_units
from autoc.latency.calibrate import export_network
from autoc.latency.device import sample_networks
from autoc.latency.measure import make_session
from autoc.space import load_space

from benchmarks.common import record_result


# A node's unit: the first scope of its name; the classifier and pooling belong to the head.
_SCOPE = re.compile(r"^/(stages\.\d+\.\d+|stem|head|classifier|GlobalAveragePool|Flatten)(?:/(expand|dw|project|Add))?")
_HEAD_SCOPES = {"classifier", "GlobalAveragePool", "Flatten"}
# What the runtime adds around kernels: layout changes and (de)quantisation.
BOUNDARY_OPS = {"Transpose", "ReorderInput", "ReorderOutput", "QuantizeLinear", "DequantizeLinear"}


def node_times(models: list[tuple[bytes, tuple[int, ...]]], *, repeats: int) -> list[dict[tuple[str, str], float]]:
    """Per model, median µs per (node name, op type); the models run interleaved, ``repeats`` rounds
    (the machine's speed drifts, so a network and its units are profiled in the same rounds)."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for i, (model, shape) in enumerate(models):
            session = make_session(model, profile_prefix=str(Path(tmp) / f"model{i}"))
            x = np.random.default_rng(i).standard_normal(shape, dtype=np.float32)
            runs.append((session, {session.get_inputs()[0].name: x}))
        for _ in range(repeats):
            for session, feed in runs:
                session.run(None, feed)
        return [_medians(json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))) for session, _ in runs]


def _medians(events: list[dict]) -> dict[tuple[str, str], float]:
    durations = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            durations[(event["name"].removesuffix("_kernel_time"), event["args"].get("op_name", "?"))].append(event["dur"])
    return {key: statistics.median(values) for key, values in durations.items()}


def unit_of(node: str) -> tuple[str, str] | None:
    """(unit, part) a node's scope names, or None for nodes the exporter or runtime added unnamed."""
    match = _SCOPE.match(node)
    if match is None:
        return None
    unit = "head" if match.group(1) in _HEAD_SCOPES else match.group(1)
    return unit, match.group(2) or match.group(1)


def by_unit(times: dict[tuple[str, str], float]) -> tuple[dict[str, float], dict[str, float]]:
    """A whole network: (µs per unit of its compute nodes, µs per op type of the rest: layout and Q/DQ
    nodes, named or not, and any compute node no unit's scope names)."""
    units, rest = defaultdict(float), defaultdict(float)
    for (node, op), us in times.items():
        owner = None if op in BOUNDARY_OPS else unit_of(node)
        if owner is None:
            rest[op] += us
        else:
            units[owner[0]] += us
    return units, rest


def alone_split(times: dict[tuple[str, str], float]) -> tuple[float, dict[str, float]]:
    """A unit alone: (µs of its compute nodes, named or not: the runtime renames the node that writes
    the graph output; µs per op type of its layout and Q/DQ nodes)."""
    compute, boundary = 0.0, defaultdict(float)
    for (_, op), us in times.items():
        if op in BOUNDARY_OPS:
            boundary[op] += us
        else:
            compute += us
    return compute, boundary


def profile_network(spec, policy, *, repeats: int) -> dict:
    units = [u for u in network_units(spec, policy) if u.measurable]
    network, *alone_times = node_times(
        [(export_network(spec, policy), input_shape(spec))] + [(export_unit(u), u.input_shape) for u in units],
        repeats=repeats,
    )
    in_network, extra = by_unit(network)
    boundary_nodes = [sum(op in BOUNDARY_OPS for _, op in times) for times in (network, *alone_times)]
    alone, alone_extra = {}, defaultdict(float)
    for unit, times in zip(units, alone_times):
        alone[unit.name], boundary = alone_split(times)
        for op, us in boundary.items():
            alone_extra[op] += us
    return {
        "units": [{"name": u.name, "key": u.key, "precision": u.precision,
                   "in_network_us": in_network.get(u.name, 0.0), "alone_us": alone[u.name]} for u in units],
        "network_boundary_us": dict(extra), "alone_boundary_us": dict(alone_extra),
        "network_boundary_nodes": boundary_nodes[0], "alone_boundary_nodes": sum(boundary_nodes[1:]),
        "network_total_us": sum(network.values()),
    }


def print_network(label: str, result: dict) -> None:
    rows = result["units"]
    print(f"\n{label}: profiled total {result['network_total_us']:.0f} µs; compute nodes in the network "
          f"{sum(r['in_network_us'] for r in rows):.0f} µs vs its units alone {sum(r['alone_us'] for r in rows):.0f} µs")
    for r in rows:
        ratio = r["in_network_us"] / r["alone_us"] if r["alone_us"] else float("nan")
        print(f"  {r['name']:<11} {r['precision']:<5} in network {r['in_network_us']:7.1f}  alone {r['alone_us']:7.1f}  "
              f"x{ratio:4.2f}  {r['key']}")
    for title, unnamed in (("layout and Q/DQ nodes, network", result["network_boundary_us"]),
                           ("layout and Q/DQ nodes, units alone (all units)", result["alone_boundary_us"])):
        print(f"  {title}: " + ", ".join(f"{op} {us:.0f}" for op, us in sorted(unnamed.items(), key=lambda kv: -kv[1])))
    print(f"  layout and Q/DQ node count: network {result['network_boundary_nodes']}, units alone {result['alone_boundary_nodes']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mbv2-cifar")
    parser.add_argument("--seed", type=int, default=2026, help="the sample latency.accuracy draws (same default)")
    parser.add_argument("--networks", type=int, nargs="+", required=True, help="indices into that sample")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/latency_profile.json"))
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    networks = sample_networks(load_space(args.space), max(args.networks) + 1, seed=args.seed)
    print(f"load average at start: {os.getloadavg()}")
    results = {}
    for index in args.networks:
        results[f"net{index}"] = profile_network(*networks[index], repeats=args.repeats)
        print_network(f"net{index}", results[f"net{index}"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    record_result("latency.profile", f"seed{args.seed}-" + "-".join(map(str, args.networks)),
                  title=f"ONNX Runtime per-node profile of {len(results)} networks: in-network vs alone",
                  figures={f"{name}: compute in network / units alone": sum(u["in_network_us"] for u in r["units"])
                           / max(sum(u["alone_us"] for u in r["units"]), 1e-9) for name, r in results.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
