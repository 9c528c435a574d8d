"""Device name -> latency model. ``host`` is measured here on first use and cached; other
names are profiles (data, not code): the user's calibrated one under runs/devices/ first, else
one shipped with autoc (``autoc.latency.shipped``)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path


from autoc.errors import DeviceError
from autoc.latency.calibrate import Network, calibrate_correction
from autoc.latency.model import LatencyModel, LookupTableLatencyModel, open_host_model
from autoc.latency.profile import HOST, RUNTIME, DeviceProfile, host_device, host_runtime, load_profile
from autoc.latency.runtimes import RUNTIMES
from autoc.latency.shipped import shipped_devices, shipped_path
from autoc.space import SearchSpace, random_sampling_study, sample_candidate

logger = logging.getLogger(__name__)

CALIBRATION_NETWORKS = 32  # the switch term needs >= 12; 16 -> 32 fit networks: 92.9% -> 94.8% within 10% offline
CALIBRATION_HELD_OUT = 8
CALIBRATION_SEED = 12345

HOW_TO_CREATE = (
    "create one with 'autoc calibrate --device NAME --export-pack DIR' then '--import RESULTS.csv', "
    "'autoc calibrate --device NAME --from-networks CSV --space SPACE', "
    "or 'autoc calibrate --device NAME --ofa-lut YAML --space SPACE'"
)


def profile_path(device: str, *, runs_dir: Path, threads: int = 1) -> Path:
    """Where ``device``'s profile lives under ``runs_dir`` (the host's per runtime and thread count:
    host-tN.json for ONNX Runtime, host-executorch-tN.json for ExecuTorch)."""
    devices = runs_dir / "devices"
    return devices / (f"{device}-t{threads}.json" if host_runtime(device) is not None else f"{device}.json")


def calibrated_devices(runs_dir: Path) -> list[str]:
    """Names of the profiles calibrated under ``runs_dir/devices`` (host profiles aside), sorted."""
    return sorted(p.stem for p in (runs_dir / "devices").glob("*.json") if not p.stem.startswith(f"{HOST}-"))


def known_devices(runs_dir: Path) -> list[str]:
    """``host``, ``host-RUNTIME`` where such a profile is calibrated, every named profile under
    ``runs_dir/devices`` and every shipped one."""
    others = [host_device(r) for r in RUNTIMES if r != RUNTIME and any((runs_dir / "devices").glob(f"{host_device(r)}-t*.json"))]
    return [HOST, *others, *sorted({*calibrated_devices(runs_dir), *shipped_devices()})]


CALIBRATED, SHIPPED = "calibrated", "shipped"
_announced: set[tuple[str, str]] = set()  # (device, profile file) whose kind this process has logged: once is enough


def find_profile(device: str, *, runs_dir: Path, threads: int = 1) -> tuple[Path, str] | None:
    """Where ``device``'s profile is and which kind it is: the user's calibrated one under
    ``runs_dir`` first, then the one shipped with autoc; None when neither exists."""
    path = profile_path(device, runs_dir=runs_dir, threads=threads)
    if path.is_file():
        return path, CALIBRATED
    shipped = None if host_runtime(device) is not None else shipped_path(device)
    return (shipped, SHIPPED) if shipped is not None else None


def usable_as_file_name(name: str) -> bool:
    """Letters, digits, '-', '_' and '.' only, not hidden: no path separator, no '..', no surprise."""
    return bool(name) and all(c.isalnum() or c in "-_." for c in name) and not name.startswith(".")


def check_device_name(device: str) -> str:
    """A device name becomes a file name: letters, digits, '-', '_' and '.' only."""
    if not usable_as_file_name(device):
        raise DeviceError(
            f"device name {device!r} is not usable as a profile name; use letters, digits, '-', '_' or '.' "
            "(e.g. pixel2, raspi4)"
        )
    if device.startswith(f"{HOST}-"):
        raise DeviceError(f"device name {device!r} is reserved for host profiles; pick another name")
    return device


def open_device_model(device: str, *, runs_dir: Path, threads: int = 1) -> LookupTableLatencyModel:
    """The model of an existing profile (``host`` and ``host-executorch`` included) that never measures;
    DeviceError if none."""
    if host_runtime(device) is None:
        check_device_name(device)
    found = find_profile(device, runs_dir=runs_dir, threads=threads)
    if found is None:
        path = profile_path(device, runs_dir=runs_dir, threads=threads)
        runtime = host_runtime(device)
        flags = "" if runtime in (None, RUNTIME) else f" --runtime {runtime}"
        raise DeviceError(
            f"unknown device {device!r}: no profile at {path} and none shipped; known devices: "
            f"{', '.join(known_devices(runs_dir))}; {HOW_TO_CREATE}"
            + (f" (host: 'autoc calibrate --device host{flags} --threads {threads}')" if runtime else "")
        )
    path, kind = found
    profile = load_profile(path)
    if (device, str(path)) not in _announced:
        _announced.add((device, str(path)))
        if kind == SHIPPED:
            logger.info("autoc: device %s: the profile shipped with autoc (%s); a profile you calibrate as %s "
                        "replaces it", device, _describe(profile), profile_path(device, runs_dir=runs_dir))
        else:
            logger.info("autoc: device %s: calibrated profile %s", device, path)
    if profile.device != device:
        # a copied or renamed file would silently stand for another device
        raise DeviceError(
            f"device profile {path} is named for device {device!r} but its field device says {profile.device!r}; "
            f"rename the file to {profile.device}.json if it is that device's, or recalibrate {device!r}"
        )
    return LookupTableLatencyModel(profile, profile_path=path, measure_missing=False, threads=profile.identity.threads)


@dataclass(frozen=True, kw_only=True)
class ProfileEntry:
    """One profile file as ``autoc devices`` lists it: the name a search takes, shipped or
    calibrated, the file, and the profile (None, with ``problem``, where it does not load)."""

    name: str
    kind: str
    path: Path
    profile: DeviceProfile | None = None
    problem: str | None = None
    replaced: bool = False  # a shipped profile that a calibrated one of the same name replaces
    threads: int | None = None  # host profiles: the --threads they serve


def list_profiles(runs_dir: Path) -> list[ProfileEntry]:
    """Every profile a search can name: those calibrated under ``runs_dir/devices`` (host ones by
    thread count), then the shipped ones; none is measured or written."""
    entries = []
    for path in sorted((runs_dir / "devices").glob("*.json")):
        host, threads = _host_threads(path.stem)
        if threads is None and (not usable_as_file_name(path.stem) or path.stem.startswith(f"{HOST}-")):
            continue  # no device name a search takes
        entries.append(_entry(host if threads else path.stem, CALIBRATED, path, threads=threads))
    calibrated = {e.name for e in entries}
    for name in shipped_devices():
        entries.append(_entry(name, SHIPPED, shipped_path(name), replaced=name in calibrated))
    return entries


def _host_threads(stem: str) -> tuple[str, int | None]:
    """(host device, N) of a host profile's name host-tN or host-RUNTIME-tN, else (host, None)."""
    for runtime in RUNTIMES:
        prefix = f"{host_device(runtime)}-t"
        digits = stem[len(prefix):] if stem.startswith(prefix) else ""
        if digits.isdigit() and int(digits) > 0:
            return host_device(runtime), int(digits)
    return HOST, None


def _entry(name: str, kind: str, path: Path, **fields) -> ProfileEntry:
    try:
        return ProfileEntry(name=name, kind=kind, path=path, profile=load_profile(path), **fields)
    except DeviceError as exc:  # one damaged file must not hide the others
        return ProfileEntry(name=name, kind=kind, path=path, problem=str(exc), **fields)


def _describe(profile) -> str:
    figures = profile.validation
    share, source = figures.get("within_10pct"), figures.get("source_file") or profile.source
    held = f", {100 * share:.0f}% of {figures.get('n')} held-out networks within 10%" if share is not None else ""
    return f"fitted from {source}{held}"


def open_latency_model(
    device: str, *, runs_dir: Path, space: SearchSpace, progress: bool, threads: int = 1
) -> LatencyModel:
    """The latency model of ``device``: a shipped or calibrated profile by name, or ``host`` /
    ``host-executorch`` (this machine in ONNX Runtime / ExecuTorch, measured on first use for
    ``space`` and cached under ``runs_dir/devices``)."""
    runtime = host_runtime(device)
    if runtime is None:
        return open_device_model(device, runs_dir=runs_dir, threads=threads)
    model = open_host_model(profile_path(device, runs_dir=runs_dir, threads=threads), threads=threads, runtime=runtime)
    if not model.profile.validation:
        calibrate_host(model, space=space, progress=progress)
    return model


def calibrate_host(
    model: LookupTableLatencyModel,
    *,
    space: SearchSpace,
    progress: bool,
    networks: int = CALIBRATION_NETWORKS,
    held_out: int = CALIBRATION_HELD_OUT,
    repeats: int | None = None,
    seed: int = CALIBRATION_SEED,
) -> None:
    """Fit the whole-network correction on random networks of ``space``, validate on others."""
    start = time.perf_counter()
    if progress:
        logger.info("autoc: calibrating the host latency profile (%s) on %d + %d random networks; done once",
                    model.profile_path, networks, held_out)
    sampled = sample_networks(space, networks + held_out, seed=seed)
    options = {} if repeats is None else {"repeats": repeats}
    profile = calibrate_correction(model, sampled[:networks], held_out=sampled[networks:], **options)
    if progress:
        figures = profile.validation
        share = figures.get("within_10pct")
        units = "" if profile.in_context is None else f" on in-context unit times ({figures['in_context_units']} units)"
        logger.info(
            f"autoc: host profile ready in {time.perf_counter() - start:.0f} s: correction "
            f"{profile.correction.describe()}{units}; held-out within 10%: "
            f"{'n/a' if share is None else f'{100 * share:.0f}%'} of {figures.get('n')}"
        )


def sample_networks(space: SearchSpace, count: int, *, seed: int) -> list[Network]:
    """Random (NetSpec, policy) pairs of ``space``: an in-memory study with a seeded random sampler."""
    study = random_sampling_study(seed=seed)
    networks = []
    for _ in range(count):
        candidate = sample_candidate(space, study.ask())
        networks.append((candidate.netspec(), candidate.policy))
    return networks
