"""`autoc latency`: how good a device profile is, and what it predicts.

    autoc latency validate --device NAME                      held-out figures recorded at calibration
    autoc latency validate --device host --measure 20         ... plus 20 fresh networks measured now
    autoc latency predict --device NAME POLICY.json [--breakdown]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

VALIDATE_SEED = 777  # never the calibration seed: these networks were not used in fitting


def register(sub: argparse._SubParsersAction) -> None:
    """Add `autoc latency validate` and `autoc latency predict`."""
    p = sub.add_parser("latency", help="validate a device profile or predict a policy's latency", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", required=True)
    v = actions.add_parser("validate", help="share within +-10%%, MAPE, Kendall tau and worst cases on held-out networks")
    v.add_argument("--measure", type=int, default=None, help="host only: also measure this many fresh networks now")
    v.add_argument("--space", default=None, help="space of the fresh networks (default: the profile's, else autoc search's)")
    _common(v)
    v.set_defaults(handler=run_validate)
    q = actions.add_parser("predict", help="predicted latency (and energy estimate) of one policy JSON")
    q.add_argument("policy", type=Path, help="a best_policy.json (schema autoc.policy/1 or /2)")
    q.add_argument("--breakdown", action="store_true", help="also print the time of every unit")
    _common(q)
    q.set_defaults(handler=run_predict)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="host", help="host or a calibrated profile name")
    p.add_argument("--threads", type=int, default=None, help="host only: the profile's thread count (default 1)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="profiles live in RUNS_DIR/devices")


def _threads(args: argparse.Namespace) -> int:
    """--threads picks one of the host's profiles (host-tN.json); any other device has one profile."""
    from autoc.errors import DeviceError

    if args.threads is None:
        return 1
    if args.threads < 1:
        raise DeviceError(f"--threads {args.threads} must be >= 1 (ONNX Runtime threads of the host profile)")
    if args.device != "host":
        raise DeviceError(
            f"--threads picks a host profile (host-tN.json); device {args.device!r} has a single "
            "profile with its own thread count: drop --threads"
        )
    return args.threads


def _check_measure(args: argparse.Namespace):
    """The space of the fresh networks (None without --measure), checked before anything runs."""
    from autoc.errors import DeviceError
    from autoc.space import load_space

    if args.measure is None:
        if args.space is not None:
            raise DeviceError("--space chooses the fresh networks of --measure; add --measure N or drop --space")
        return None
    if args.measure < 1:
        raise DeviceError(f"--measure {args.measure} must be >= 1 (networks to measure now); e.g. --measure 20")
    if args.device != "host":
        raise DeviceError(f"--measure runs networks on this machine; {args.device!r} is another device: drop --measure")
    return load_space(args.space) if args.space is not None else None


def run_validate(args: argparse.Namespace) -> int:
    """Print a device profile's held-out figures, and those of freshly measured networks with --measure."""
    from autoc.latency.device import open_device_model
    from autoc.latency.validate import format_figures

    threads = _threads(args)
    space = _check_measure(args)
    model = open_device_model(args.device, runs_dir=args.runs_dir, threads=threads)
    profile = model.profile
    ident = profile.identity
    # profiles built from published data know no runtime or thread count: say only what is known
    runtime = f"{ident.runtime} {ident.runtime_version}, {ident.threads} thread(s); " if ident.threads else ""
    print(f"device {profile.device} ({profile.source}): {ident.cpu_model}; {runtime}"
          f"kernels {'/'.join(ident.precisions)}; {len(profile.blocks)} blocks; "
          f"{'in-context unit model; ' if profile.in_context is not None else ''}"
          f"correction {profile.correction.describe()}; calibrated {ident.created}")
    figures = dict(profile.validation)
    if figures.get("n"):
        print(format_figures(figures, title="at calibration" + (" (in-sample!)" if figures.get("in_sample") else "")))
    else:
        print(f"no held-out figures recorded: {figures.get('note', 'calibrate with held-out networks')}")
    if args.measure:
        print(format_figures(_measure_fresh(args, model, space=space, threads=threads), title="measured now"))
    return 0


def _measure_fresh(args: argparse.Namespace, model, *, space, threads: int) -> dict:
    from autoc.latency.calibrate import measure_networks
    from autoc.latency.device import sample_networks
    from autoc.latency.model import open_host_model
    from autoc.latency.validate import validation_figures
    from autoc.search.options import field_default
    from autoc.space import load_space

    space = space or load_space(model.profile.space.get("name") or field_default("space"))
    networks = sample_networks(space, args.measure, seed=VALIDATE_SEED)
    host = open_host_model(model.profile_path, threads=threads)  # measures units it lacks
    predicted = [host.predict(spec, policy) for spec, policy in networks]
    measured = measure_networks(networks, threads=threads)
    return validation_figures(measured=measured, predicted=predicted)


def run_predict(args: argparse.Namespace) -> int:
    """Print a policy file's predicted latency (and energy, breakdown) on a device."""
    from autoc.policy.file import load_policy
    from autoc.latency.device import open_device_model, profile_path
    from autoc.latency.model import open_host_model

    threads = _threads(args)
    policy_file = load_policy(args.policy)  # a policy of a space not installed (or changed) is refused
    spec, policy = policy_file.netspec(), policy_file.candidate.policy
    if args.device == "host":
        path = profile_path("host", runs_dir=args.runs_dir, threads=threads)
        if not path.is_file():
            print("autoc: no host profile yet; measuring the units (run 'autoc calibrate --device host' for the "
                  "whole-network correction)", file=sys.stderr)
        model = open_host_model(path, threads=threads)
    else:
        model = open_device_model(args.device, runs_dir=args.runs_dir, threads=threads)
    ms = model.predict(spec, policy)
    energy = model.predict_energy_mj(spec, policy)
    estimate = " (estimate: default coefficients)" if model.profile.energy.estimate else ""
    print(f"{args.policy}: {ms:.3f} ms predicted on {model.profile.device}; energy {energy:.4f} mJ{estimate}")
    if args.breakdown:
        for name, key, unit_ms in model.breakdown(spec, policy):
            print(f"  {name:<18} {unit_ms:9.4f} ms  {key}")
    return 0
