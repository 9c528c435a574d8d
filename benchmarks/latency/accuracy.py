"""How far to trust the latency models: held-out whole networks, never used in fitting.

    python -m benchmarks.latency.accuracy                       # host + FBNet figures
    python -m benchmarks.latency.accuracy --skip-host           # only the FBNet data (no timing, deterministic)
    python -m benchmarks.latency.accuracy --fbnet ../shared/data/fbnet_latency_pixel3_raspi4_pixel2.csv.gz

Host: random networks of mbv2-cifar (mixed fp32/int8 policies, pruned widths); the
correction is fitted on --fit networks and checked on --held-out others, all measured
interleaved in the same rounds as their units (the machine's speed drifts over minutes;
a user's calibration measures the same way). Then the default first-use calibration
(`autoc calibrate --device host`) is timed on its own, and the prediction cost per
candidate. FBNet: fit from --fbnet-fit whole networks per device column, predict the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import optuna
import torch

from autoc.latency import from_networks as fn
from autoc.latency.calibrate import calibrate_correction
from autoc.latency.device import calibrate_host, sample_networks
from autoc.latency.model import LookupTableLatencyModel, open_host_model
from autoc.latency.validate import format_figures
from autoc.space import load_space

from benchmarks.common import record_result


FBNET = Path(__file__).resolve().parents[3] / "shared" / "data" / "fbnet_latency_pixel3_raspi4_pixel2.csv.gz"
COLUMNS = ("pixel2_ms", "pixel3_ms", "raspi4_ms")
OUT = Path("runs/benchmarks/latency_accuracy_host.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mbv2-cifar")
    parser.add_argument("--fit", type=int, default=40, help="host networks the correction is fitted on")
    parser.add_argument("--held-out", type=int, default=100, help="host networks held out for validation")
    parser.add_argument("--repeats", type=int, default=60, help="timed rounds per model")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--fbnet", type=Path, default=FBNET, help="the HW-NAS-Bench FBNet latency CSV")
    parser.add_argument("--fbnet-fit", type=int, default=100)
    parser.add_argument("--skip-host", action="store_true")
    parser.add_argument("--skip-fbnet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"load average at start: {os.getloadavg()}")
    if not args.skip_host:
        host_figures(args)
    if not args.skip_fbnet:
        fbnet_figures(args)
    print(f"load average at end: {os.getloadavg()}")
    return 0


def host_figures(args: argparse.Namespace) -> None:
    space = load_space(args.space)
    with tempfile.TemporaryDirectory() as tmp:
        model = open_host_model(Path(tmp) / "host.json")
        networks = sample_networks(space, args.fit + args.held_out, seed=args.seed)
        start = time.perf_counter()
        profile = calibrate_correction(
            model, networks[: args.fit], held_out=networks[args.fit :], repeats=args.repeats
        )
        wall = time.perf_counter() - start
        figures = dict(profile.validation)
        c = profile.correction
        print(f"\nhost, {args.space}: fit {args.fit}, held out {args.held_out}, {args.repeats} rounds, "
              f"{len(profile.blocks)} units, {wall:.0f} s (load {figures['load_average']})")
        print(f"  correction: {c.describe()}; in-context unit model: "
              f"{'fitted on ' + str(figures['in_context_units']) + ' prefixed units' if profile.in_context else 'none'}")
        print(format_figures(figures, title="  host"))
        if "without_in_context" in figures:  # the same measurements, correction alone: side by side
            w = figures["without_in_context"]
            print(f"  the same networks without the in-context unit model: {100 * w['within_10pct']:.1f}% within "
                  f"+-10%, MAPE {w['mape_pct']:.2f}%, Kendall tau {w['kendall_tau']:.3f}")
        measured = [r["measured_ms"] for r in figures["networks"]]
        print(f"  held-out measured range {min(measured):.3f}-{max(measured):.3f} ms")
        save_figures(figures | {"correction": asdict(c), "wall_s": round(wall, 1)})
        per_candidate_us = prediction_cost(model, networks)
        without = figures.get("without_in_context", {})
        host = {"held out within ±10% (%)": 100 * figures["within_10pct"], "MAPE (%)": figures["mape_pct"],
                "Kendall tau": figures["kendall_tau"],
                "Kendall tau without the in-context unit model": without.get("kendall_tau"),
                "prediction cost (µs per candidate)": per_candidate_us, "calibration wall time (s)": wall,
                "load average": figures["load_average"]}

    with tempfile.TemporaryDirectory() as tmp:
        model = open_host_model(Path(tmp) / "host.json")
        start = time.perf_counter()
        calibrate_host(model, space=space, progress=False)
        figures = dict(model.profile.validation)
        print(f"\nhost default calibration (autoc calibrate --device host): {time.perf_counter() - start:.0f} s wall, "
              f"{figures['fit_networks']} + {figures['n']} networks, held-out within 10%: "
              f"{100 * figures['within_10pct']:.0f}%, tau {figures['kendall_tau']:.3f}")
        host["default host calibration wall time (s)"] = time.perf_counter() - start
    record_result("latency.accuracy", f"host-{args.space}-seed{args.seed}-fit{args.fit}-held{args.held_out}",
                  title=f"Host latency prediction: {args.held_out} held-out random {args.space} networks, "
                        f"correction fitted on {args.fit}", figures=host)


def save_figures(figures: dict) -> None:
    """Every held-out (measured, predicted) pair of the run, for a look at the errors afterwards."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, OUT)
    print(f"  wrote {OUT}")


def prediction_cost(model: LookupTableLatencyModel, networks) -> float:
    rounds = 20
    start = time.perf_counter()
    for _ in range(rounds):
        for spec, policy in networks:
            model.predict(spec, policy)
    per = (time.perf_counter() - start) / (rounds * len(networks))
    print(f"  prediction cost: {1e6 * per:.0f} us per candidate (warm table, {len(networks)} networks x {rounds})")
    return 1e6 * per


def fbnet_figures(args: argparse.Namespace) -> None:
    space = load_space("fbnet-cifar")
    for column in COLUMNS:
        start = time.perf_counter()
        networks = fn.read_networks(args.fbnet, space=space, column=column)
        fit, held_out = fn.split_fit_held_out(networks, fit=args.fbnet_fit, seed=0)
        additive = fn.fit_additive(fit)
        profile = fn.networks_profile(device=column.removesuffix("_ms"), fit=additive, space=space,
                                      source_file=str(args.fbnet), column=column, created="benchmark")
        model = LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)
        figures = fn.validate_on(model, held_out)
        print(f"\nFBNet {column}: fit on {len(fit)}, predict {len(held_out)} ({time.perf_counter() - start:.0f} s, "
              f"{len(additive.blocks)} unit keys, ridge {additive.ridge:g})")
        print(format_figures(figures, title=f"  {column}"))
        record_result("latency.accuracy", f"fbnet-{column}-fit{len(fit)}",
                      title=f"FBNet {column.removesuffix('_ms')} whole-network timings: fit on {len(fit)}, "
                            f"predict {len(held_out)}",
                      figures={"within ±10% (%)": 100 * figures["within_10pct"], "MAPE (%)": figures["mape_pct"],
                               "Kendall tau": figures["kendall_tau"]})


if __name__ == "__main__":
    sys.exit(main())
