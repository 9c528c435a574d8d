"""`autoc calibrate`: build a device's latency profile (runs/devices/NAME.json).

    autoc calibrate --device host [--threads N]                     measure this machine (ONNX Runtime)
    autoc calibrate --device host --runtime executorch              ... in ExecuTorch (.pte, XNNPACK): host-executorch
    autoc calibrate --device NAME --export-pack DIR                 write a pack to run on the device
    autoc calibrate --device NAME --import RESULTS.csv [--pack DIR] build its profile from the pack's results
    autoc calibrate --device NAME --model MODEL [--input-size S] [--keep-choices K...] [--num-classes N]
                    --export-pack DIR                               a pack of your model's layers (autoc compress
                                                                    --device NAME); --import its RESULTS.csv as above
    autoc calibrate --device NAME --from-networks CSV --space SPACE fit from whole-network latencies only
    autoc calibrate --device NAME --ofa-lut YAML... --space SPACE   import Once-for-All lookup table(s)
    autoc calibrate --device NAME --set-energy int8_pj_per_mac=0.8 static_mw=900
                                                                    set the profile's energy coefficients
"""
from __future__ import annotations

import argparse
from pathlib import Path

from autoc.commands._flags import option_flags
from autoc.commands._numbers import amount, count
from autoc.search.options import field_default as search_default


# autoc.latency.runtimes.RUNTIMES, spelt out so the CLI starts without importing torch (a test checks they agree).
RUNTIMES = ("onnxruntime", "executorch")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `autoc calibrate` and its options."""
    p = sub.add_parser("calibrate", help="measure or import a device's latency profile", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", required=True, help="'host' (this machine) or a name for another device, e.g. raspi4")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--export-pack", type=Path, metavar="DIR", help="write a calibration pack to DIR (must not exist)")
    mode.add_argument("--import", dest="import_csv", type=Path, metavar="CSV", help="RESULTS.csv of a pack run on the device")
    mode.add_argument("--from-networks", type=Path, metavar="CSV", help="whole-network latencies of architectures of --space")
    mode.add_argument("--ofa-lut", type=Path, nargs="+", metavar="YAML",
                      help="Once-for-All style block lookup table(s), e.g. one per resolution")
    mode.add_argument("--set-energy", nargs="+", metavar="KEY=VALUE",
                      help="energy coefficients of an existing profile (fp32_pj_per_mac, int8_pj_per_mac, "
                      "pj_per_weight_byte, pj_per_activation_byte, static_mw)")
    p.add_argument("--space", default=search_default("space"),
                   help=f"search space name or YAML path (default {search_default('space')}, as autoc search's)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads when measuring the host (default 1)")
    p.add_argument("--runtime", choices=RUNTIMES, default=None,
                   help="with --device host: the runtime to measure in (default onnxruntime); executorch writes the "
                   "profile of device host-executorch (search/compress --device host-executorch)")
    p.add_argument("--networks", type=int, default=None, help="networks the correction is fitted on (host: 32, pack: 24)")
    p.add_argument("--held-out", type=int, default=None, help="held-out networks for validation (host: 8, pack: 16)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per model when measuring the host")
    p.add_argument("--pack", dest="pack_dir", type=Path, default=None, help="with --import: the pack directory (default: the CSV's)")
    p.add_argument("--column", default=None, help="with --from-networks: the time column (default NAME_ms)")
    p.add_argument("--fit", type=int, default=None, help="with --from-networks: networks to fit on (default 80%%)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled networks / fit split")
    p.add_argument("--model", default=None,
                   help="with --export-pack: a pack of this model's layers for autoc compress --device NAME "
                        "(torchvision:NAME or package.module:callable, as autoc compress takes it)")
    p.add_argument("--input-size", type=count(8, 32), default=None,
                   help=f"with --model: the image size autoc compress will use [{compress_default('input_size')}]")
    p.add_argument("--keep-choices", type=amount("0.5"), nargs="+", default=None,
                   help=f"with --model: the keep ratios autoc compress will search "
                        f"[{' '.join(map(str, compress_default('keep_choices')))}]")
    p.add_argument("--num-classes", type=count(1, 10), default=None,
                   help="with --model: the classes of the data autoc compress will use [10: digits, cifar10]")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="profiles live in RUNS_DIR/devices")
    p.set_defaults(handler=run, option_flags=option_flags(p))


def compress_default(name: str):
    """autoc compress's default of option ``name`` (a model pack is made for what compress will use)."""
    from dataclasses import fields

    from autoc.modelspace.driver import CompressOptions

    return next(f.default for f in fields(CompressOptions) if f.name == name)


def run(args: argparse.Namespace) -> int:
    """Build, import or update a device's latency profile, as the mode flags given ask."""
    from autoc.errors import DeviceError
    from autoc.latency.device import check_device_name, profile_path
    from autoc.latency.profile import HOST

    if args.threads < 1:
        raise DeviceError(f"--threads {args.threads} must be >= 1")
    _check_option_scope(args)
    if args.set_energy:
        return _set_energy(args)
    host = args.device == HOST
    foreign_mode = args.import_csv or args.from_networks or args.ofa_lut
    if host and foreign_mode:
        raise DeviceError("--device host is measured on this machine; give another device name to import data")
    if not host:
        check_device_name(args.device)
    if host and args.model is not None:
        raise DeviceError("--device host: autoc compress times a model's layers on this machine itself; --model "
                          "--export-pack is for another device: give its name, e.g. --device raspi4")
    if host and args.export_pack is None:
        return _calibrate_host(args)
    if not foreign_mode and args.export_pack is None:
        raise DeviceError(
            f"device {args.device!r} is not this machine: give --export-pack DIR (then --import RESULTS.csv), "
            "--from-networks CSV or --ofa-lut YAML"
        )
    if args.export_pack is not None:
        return _export_model_pack(args) if args.model is not None else _export_pack(args)
    if args.import_csv is not None and _is_model_pack(args):
        return _import_model_pack(args)
    profile = _foreign_profile(args)
    path = profile_path(args.device, runs_dir=args.runs_dir)
    from autoc.latency.profile import save_profile
    from autoc.latency.validate import format_figures

    save_profile(profile, path)
    print(f"wrote {path}: {len(profile.blocks)} blocks, correction {profile.correction.describe()}")
    if profile.validation.get("n"):
        print(format_figures(dict(profile.validation), title=args.device))
    return 0


# Which mode each option acts in: given elsewhere it would be silently ignored.
_OPTION_MODES = {
    "networks": ("--networks", ("host", "export_pack")),
    "held_out": ("--held-out", ("host", "export_pack")),
    "repeats": ("--repeats", ("host",)),
    "runtime": ("--runtime", ("host",)),
    "pack_dir": ("--pack", ("import_csv",)),
    "column": ("--column", ("from_networks",)),
    "model": ("--model", ("export_pack",)),
    "input_size": ("--input-size", ("export_pack",)),
    "keep_choices": ("--keep-choices", ("export_pack",)),
    "num_classes": ("--num-classes", ("export_pack",)),
    "fit": ("--fit", ("from_networks",)),
}
_MODE_TEXT = {"host": "--device host", "export_pack": "--export-pack", "import_csv": "--import",
              "from_networks": "--from-networks"}
_MODEL_ONLY = ("input_size", "keep_choices", "num_classes")
# Below these the fit is underdetermined or the outlier rule (quartiles) meaningless.
_MINIMUM = {"networks": 4, "held_out": 0, "repeats": 5}


def _check_option_scope(args: argparse.Namespace) -> None:
    """Refuse an option the chosen mode would ignore, and counts out of range, before anything runs."""
    from autoc.errors import DeviceError
    from autoc.latency.profile import HOST

    modes = [m for m in ("export_pack", "import_csv", "from_networks", "ofa_lut", "set_energy") if getattr(args, m)]
    mode = modes[0] if modes else ("host" if args.device == HOST else None)
    for dest, (flag, allowed) in _OPTION_MODES.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if mode not in allowed:
            where = " or ".join(_MODE_TEXT[m] for m in allowed)
            raise DeviceError(f"{flag} acts only with {where}; drop it from this command")
        if dest in _MINIMUM and value < _MINIMUM[dest]:
            raise DeviceError(f"{flag} {value} must be >= {_MINIMUM[dest]}")
        if dest in _MODEL_ONLY and args.model is None:
            raise DeviceError(f"{flag} acts only on a model's pack (--model MODEL --export-pack DIR); drop it or "
                              "give --model")


def _set_energy(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from autoc.latency.device import open_device_model, profile_path
    from autoc.latency.energy import EnergyCoefficients
    from autoc.latency.profile import save_profile

    values = _energy_values(args.set_energy)
    model = open_device_model(args.device, runs_dir=args.runs_dir, threads=args.threads)
    energy = EnergyCoefficients.from_dict({**model.profile.energy.to_dict(), **values})
    # always the user's file: a shipped profile is package data, and this copy then replaces it
    path = profile_path(args.device, runs_dir=args.runs_dir, threads=args.threads)
    save_profile(replace(model.profile, energy=energy), path)
    print(f"wrote {path}: energy {energy.to_dict()}")
    return 0


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _energy_values(items: list[str]) -> dict[str, float | bool]:
    """--set-energy KEY=VALUE items as coefficients; each error names the command-line value."""
    from autoc.errors import DeviceError
    from autoc.latency.energy import EnergyCoefficients

    known = list(EnergyCoefficients.__dataclass_fields__)
    values: dict[str, float | bool] = {"estimate": False}  # values the user sets are the device's own
    for item in items:
        key, sep, text = (part.strip() for part in item.partition("="))
        if not sep:
            raise DeviceError(f"--set-energy {item!r} is not KEY=VALUE; e.g. --set-energy int8_pj_per_mac=0.8")
        if key not in known:
            raise DeviceError(f"--set-energy {item!r}: unknown coefficient {key!r}; allowed: {', '.join(known)}")
        if key == "estimate":
            if text.lower() not in _TRUE + _FALSE:
                raise DeviceError(f"--set-energy {item!r}: give estimate=true or estimate=false")
            values[key] = text.lower() in _TRUE
            continue
        try:
            values[key] = float(text)
            EnergyCoefficients(**{key: values[key]})  # the coefficients' own range check
        except ValueError:
            raise DeviceError(f"--set-energy {item!r}: {text!r} is not a number; e.g. static_mw=900") from None
        except DeviceError as exc:
            raise DeviceError(f"--set-energy {item!r}: {exc}; give another value on the command line") from None
    return values


def _calibrate_host(args: argparse.Namespace) -> int:
    from autoc.latency.device import CALIBRATION_HELD_OUT, CALIBRATION_NETWORKS, calibrate_host, profile_path
    from autoc.latency.model import open_host_model
    from autoc.latency.profile import host_device
    from autoc.latency.runtimes import runtime as runtime_named
    from autoc.latency.validate import format_figures
    from autoc.space import load_space

    runtime = runtime_named(args.runtime)
    runtime.check()  # missing: one line naming the install, before anything is measured or stored
    space = load_space(args.space)
    device = host_device(runtime.name)
    path = profile_path(device, runs_dir=args.runs_dir, threads=args.threads)
    model = open_host_model(path, threads=args.threads, runtime=runtime.name)
    calibrate_host(
        model,
        space=space,
        progress=True,
        networks=args.networks or CALIBRATION_NETWORKS,
        held_out=CALIBRATION_HELD_OUT if args.held_out is None else args.held_out,
        repeats=args.repeats,
        seed=args.seed,
    )
    figures = dict(model.profile.validation)
    print(f"wrote {path} ({figures['calibration_wall_s']} s)" + ("" if device == "host" else f"; use it as --device {device}"))
    print(format_figures(figures, title=device))
    return 0


def _export_pack(args: argparse.Namespace) -> int:
    from autoc.latency.pack import RUNNER, export_pack
    from autoc.space import load_space

    summary = export_pack(
        args.export_pack,
        device=args.device,
        space=load_space(args.space),
        networks=args.networks or 24,
        held_out=16 if args.held_out is None else args.held_out,
        seed=args.seed,
    )
    print(f"wrote {summary.directory}: {summary.units} units, {summary.networks} + {summary.held_out} networks")
    print(f"on the device: python3 {RUNNER}  (needs onnxruntime), then: autoc calibrate --device {args.device} "
          f"--import RESULTS.csv --pack {summary.directory}")
    return 0


def _export_model_pack(args: argparse.Namespace) -> int:
    from autoc.errors import DeviceError
    from autoc.latency.pack import RUNNER
    from autoc.modelspace.groups import analyse
    from autoc.modelspace.pack import export_model_pack
    from autoc.modelspace.reference import load_model

    if args.networks is not None or args.held_out is not None:
        raise DeviceError("--networks and --held-out act on a search space's pack; a model's pack holds the "
                          "compressed variants autoc compress fits its table on: drop them")
    import torch

    size = args.input_size or compress_default("input_size")
    classes = args.num_classes or 10
    keep = tuple(args.keep_choices or compress_default("keep_choices"))
    if any(not 0 < k <= 1 for k in keep):
        raise DeviceError(f"--keep-choices {' '.join(f'{k:g}' for k in keep)}: each must lie in (0, 1], e.g. 0.5 1")
    model = load_model(args.model, num_classes=classes)  # random weights: only the layers' shapes count
    example = torch.zeros(1, 3, size, size)
    structure = analyse(model, example)
    summary = export_model_pack(args.export_pack, device=args.device, model=model, reference=args.model,
                                structure=structure, example_input=example, num_classes=classes, keep_choices=keep,
                                seed=args.seed)
    print(f"wrote {summary.directory}: {summary.units} units of {args.model} at {size} px, {summary.networks} + "
          f"{summary.held_out} compressed variants")
    print(f"on the device: python3 {RUNNER}  (needs onnxruntime), then: autoc calibrate --device {args.device} "
          f"--import {summary.directory / 'RESULTS.csv'}")
    return 0


def _is_model_pack(args: argparse.Namespace) -> bool:
    from autoc.latency.pack import MODEL_PACK, load_manifest

    return MODEL_PACK in load_manifest(args.pack_dir or args.import_csv.parent)


def _import_model_pack(args: argparse.Namespace) -> int:
    from autoc.modelspace.pack import import_model_results, model_table_path

    found = import_model_results(args.import_csv, device=args.device, pack_dir=args.pack_dir)
    path = model_table_path(args.device, model=found.model, digest=found.digest, runs_dir=args.runs_dir)
    found.save(path)
    errors = found.held_out_errors
    held = (f"; {len(errors)} held-out variants predicted within {100 * max(map(abs, errors)):.1f}%"
            if errors else "")
    print(f"wrote {path}: {len(found.table.units_ms)} units of {found.model}, correction "
          f"{found.table.correction.describe()}{held}")
    keep = " ".join(f"{k:g}" for k in found.keep_choices)
    print(f"use it: autoc compress {found.model} --device {args.device} --input-size {found.input_size} "
          f"--keep-choices {keep} --budget-ms ...")
    return 0


def _foreign_profile(args: argparse.Namespace):
    from autoc.space import load_space

    if args.import_csv is not None:
        from autoc.latency.pack import import_results

        return import_results(args.import_csv, device=args.device, pack_dir=args.pack_dir)
    space = load_space(args.space)
    if args.ofa_lut is not None:
        from autoc.latency.ofa_lut import ofa_profile

        return ofa_profile(args.ofa_lut, device=args.device, space=space, seed=args.seed)
    from autoc.latency.from_networks import profile_from_csv

    return profile_from_csv(args.from_networks, device=args.device, space=space, column=args.column, fit=args.fit,
                            seed=args.seed)
