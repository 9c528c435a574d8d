"""Device name -> latency model. ``host`` is measured here on first use and cached; other
names are profiles under runs/devices/ (data, not code)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import optuna

from autoc.errors import DeviceError
from autoc.latency.calibrate import calibrate_overhead
from autoc.latency.model import LatencyModel, LookupTableLatencyModel, open_host_model
from autoc.latency.profile import HOST, load_profile
from autoc.space import SearchSpace, sample_candidate

CALIBRATION_NETWORKS = 6
CALIBRATION_HELD_OUT = 4
CALIBRATION_SEED = 12345


def profile_path(device: str, *, runs_dir: Path, threads: int = 1) -> Path:
    devices = runs_dir / "devices"
    return devices / (f"{HOST}-t{threads}.json" if device == HOST else f"{device}.json")


def open_latency_model(
    device: str, *, runs_dir: Path, space: SearchSpace, progress: bool, threads: int = 1
) -> LatencyModel:
    path = profile_path(device, runs_dir=runs_dir, threads=threads)
    if device != HOST:
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("*.json") if not p.stem.startswith(f"{HOST}-"))
            raise DeviceError(
                f"unknown device {device!r}: no profile at {path}; known devices: host"
                + "".join(f", {name}" for name in known)
                + " (calibrate a device first)"
            )
        return LookupTableLatencyModel(load_profile(path), profile_path=path, measure_missing=False, threads=threads)
    model = open_host_model(path, threads=threads)
    if not model.profile.validation:
        calibrate_host(model, space=space, progress=progress)
    return model


def calibrate_host(model: LookupTableLatencyModel, *, space: SearchSpace, progress: bool) -> None:
    """Fit the whole-network correction on random networks of ``space`` (first use of a host profile)."""
    start = time.perf_counter()
    if progress:
        print(f"autoc: calibrating the host latency profile ({model.profile_path}); done once", file=sys.stderr)
    networks = sample_networks(space, CALIBRATION_NETWORKS + CALIBRATION_HELD_OUT, seed=CALIBRATION_SEED)
    profile = calibrate_overhead(
        model, networks[:CALIBRATION_NETWORKS], held_out=networks[CALIBRATION_NETWORKS:]
    )
    if progress:
        figures = profile.validation
        print(
            f"autoc: host profile ready in {time.perf_counter() - start:.0f} s: overhead "
            f"{profile.overhead_ms:+.3f} ms, held-out within 10%: {figures.get('within_10pct')}",
            file=sys.stderr,
        )


def sample_networks(space: SearchSpace, count: int, *, seed: int):
    """Random (NetSpec, policy) pairs of ``space``: an in-memory study with a seeded random sampler."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    networks = []
    for _ in range(count):
        candidate = sample_candidate(space, study.ask())
        networks.append((candidate.netspec(), candidate.policy))
    return networks
