"""Calibration from whole-network times alone, on mixed-precision networks measured here.

`autoc calibrate --device NAME --from-networks CSV` fits a profile from N architectures timed
end to end. The FBNet data (benchmarks.latency.accuracy --skip-host) are fp32 only; this
benchmark measures random `mbv2-cifar` networks with mixed fp32/int8 policies and pruned widths
on this host (ONNX Runtime, the calibration protocol: interleaved rounds, two sessions per
network), writes them as a from-networks CSV (trial parameters + host_ms), then fits on
--fit of them and predicts the others — with the prior's per-precision, depthwise-apart
costs and the precision-switch cost, and without them (one cost per MAC, element and unit,
no switch cost: the fit before them), on the same measurements.

    python -m benchmarks.latency.from_networks_host                      # measure 200 networks, fit 40 and 100
    python -m benchmarks.latency.from_networks_host --csv runs/benchmarks/host_networks.csv --reuse   # refit only
    python -m benchmarks.latency.from_networks_host --csv benchmarks/latency/host_networks_mbv2.csv.gz --reuse  # the results page's data
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import optuna

from autoc.latency import from_networks as fn
from autoc.latency.blocks import DEPTHWISE_KERNELS, input_shape, measurable_units
from autoc.latency.calibrate import NETWORK_SESSIONS, export_network, noise_figures, session_means, session_spreads
from autoc.latency.measure import measure_interleaved
from autoc.latency.model import LookupTableLatencyModel
from autoc.space import load_space, sample_candidate

from benchmarks.common import record_result


COLUMN = "host_ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mbv2-cifar")
    parser.add_argument("--networks", type=int, default=200, help="networks to sample and measure")
    parser.add_argument("--fit", type=int, nargs="+", default=[40, 100], help="fit sizes to report")
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled networks")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the fit / held-out split")
    parser.add_argument("--csv", type=Path, default=Path("runs/benchmarks/host_networks.csv"))
    parser.add_argument("--reuse", action="store_true", help="fit on the CSV as it is, measure nothing")
    args = parser.parse_args()
    space = load_space(args.space)
    if not args.reuse:
        measure_to_csv(space, args)
    networks = fn.read_networks(args.csv, space=space, column=COLUMN)
    int8_share = sum(any(u.precision == "int8" for u in measurable_units(n.candidate.netspec(), n.candidate.policy)) for n in networks) / len(networks)
    print(f"{len(networks)} networks in {args.csv} ({int8_share:.0%} with int8 layers), "
          f"{min(n.latency_ms for n in networks):.3f}-{max(n.latency_ms for n in networks):.3f} ms")
    for fit_count in args.fit:
        fit, held_out = fn.split_fit_held_out(networks, fit=fit_count, seed=args.split_seed, source=str(args.csv))
        for precision_terms in (True, False):
            start = time.perf_counter()
            additive = fn.fit_additive(fit, precision_terms=precision_terms)
            seconds = time.perf_counter() - start
            profile = fn.networks_profile(device="host-csv", fit=additive, space=space, source_file=str(args.csv),
                                          column=COLUMN)
            figures = fn.validate_on(LookupTableLatencyModel(profile, profile_path=None, measure_missing=False), held_out)
            label = "with precision terms" if precision_terms else "without (one cost per MAC, no switch cost)"
            print(f"fit {len(fit)}, held out {len(held_out)}, {label}: {figures['within_10pct']:.1%} within +-10%, "
                  f"MAPE {figures['mape_pct']:.2f}%, Kendall tau {figures['kendall_tau']:.3f}; "
                  f"switch {additive.ms_per_transition * 1000:.1f} us, int8 / fp32 cost per MAC {_ratio(additive.prior, 'mmac')}, "
                  f"fp32 us per depthwise MMAC k{'/k'.join(map(str, DEPTHWISE_KERNELS))} {_depthwise(additive.prior)}, "
                  f"{len(additive.blocks)} keys, fitted in {seconds:.2f} s")
            if precision_terms:
                record_result("latency.from_networks_host", f"{args.csv.name}-fit{len(fit)}-split{args.split_seed}",
                              title=f"From-networks calibration of {len(networks)} host-measured {args.space} networks: "
                                    f"fit on {len(fit)}, predict {len(held_out)}",
                              figures={"within ±10% (%)": 100 * figures["within_10pct"], "MAPE (%)": figures["mape_pct"],
                                       "Kendall tau": figures["kendall_tau"]})


def _depthwise(prior) -> str:
    """The prior's fp32 cost per depthwise MMAC by kernel size: three values where the fit priced
    them apart, one repeated where cross-validation kept one pooled cost."""
    return "/".join(f"{prior.coefficient(f'fp32_dw_k{k}_mmac') * 1000:.1f}" for k in DEPTHWISE_KERNELS)


def _ratio(prior, feature: str) -> str:
    fp32 = prior.coefficient(f"fp32_{feature}")
    return f"x{prior.coefficient(f'int8_{feature}') / fp32:.2f}" if fp32 > 0 else "n/a"


def measure_to_csv(space, args) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    trials = [study.ask() for _ in range(args.networks)]
    candidates = [sample_candidate(space, trial) for trial in trials]
    specs = [c.netspec() for c in candidates]
    models = [export_network(spec, c.policy) for spec, c in zip(specs, candidates)]
    shapes = [input_shape(spec) for spec in specs]
    print(f"measuring {len(models)} networks x {NETWORK_SESSIONS} sessions, {args.repeats} rounds ...", flush=True)
    start = time.perf_counter()
    measured = measure_interleaved(models * NETWORK_SESSIONS, input_shapes=shapes * NETWORK_SESSIONS,
                                   threads=args.threads, warmup=args.warmup, repeats=args.repeats)
    noise = noise_figures(session_spreads(measured, networks=len(models)))
    print(f"measured in {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.2f}; two sessions of a network "
          f"differ by a median {noise['session_spread_median_pct']}%{' (NOISY)' if noise['noisy'] else ''}")
    names = sorted({name for trial in trials for name in trial.params})
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["index", *names, COLUMN])
        for i, (trial, ms) in enumerate(zip(trials, session_means(measured, networks=len(models)))):
            writer.writerow([f"net{i}", *(trial.params.get(n, "") for n in names), f"{ms:.5f}"])
    print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
