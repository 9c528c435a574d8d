"""Calibration packs: measure a device that cannot run autoc.

``export_pack`` writes a directory with the ONNX models of every unit (block, stem, head;
fp32 and int8 QDQ as the sampled policies say) and of sampled whole networks of a space,
a ``manifest.json`` naming them, and ``run_pack.py``, a standalone runner that needs only
Python and onnxruntime. The user copies the directory to the device (a Raspberry Pi, an
Android phone through Termux, any ARM board), runs ``python3 run_pack.py`` there and brings
back ``RESULTS.csv``; ``import_results`` turns it into the device's profile: the unit
table, the correction fitted on the pack's fitting networks, and validation figures on its
held-out networks.

RESULTS.csv format (what the runner writes; any tool may write it)::

    # cpu_model: Cortex-A72          <- optional '# key: value' metadata lines: pack (the
    # threads: 1                        manifest's pack_id), cpu_model, logical_cores,
    # runtime_version: 1.17.0           threads, runtime, runtime_version, python, created
    name,kind,ms,median_ms,p10_ms,p90_ms,repeats
    empty,empty,0.0121,0.0123,0.0119,0.0135,60
    ir-r32-c16-...-fp32,unit,0.2031,0.2042,0.2001,0.2150,60
    net000,network,1.8003,1.8121,1.7900,1.8600,60

``name`` and ``kind`` as in manifest.json (every model needs exactly one row); ``ms`` the
latency figure in ms, > 0 (the runner writes the 10th percentile of its runs, see
``autoc.latency.measure``); the other columns are optional records.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from autoc.candidate import Candidate
from autoc.files import make_temp_dir
from autoc.errors import AutocError, DeviceError
from autoc.latency.blocks import EMPTY, input_shape, measurable_units, precision_transitions, unit_batch, unit_times
from autoc.latency.calibrate import export_network, fit_correction
from autoc.latency.csv_input import read_csv
from autoc.latency.measure import Measurement
from autoc.latency.profile import DeviceIdentity, DeviceProfile
from autoc.onnx.int8 import INT8, host_int8_weights
from autoc.latency.validate import validation_figures
from autoc.space import SearchSpace, random_sampling_study, sample_candidate

log = logging.getLogger("autoc.latency")

PACK_SCHEMA = "autoc.pack/1"
MANIFEST = "manifest.json"
RUNNER = "run_pack.py"
RESULT_COLUMNS = ("name", "kind", "ms")
MODEL_PACK = "model"  # the manifest key of a pack of a user's model (autoc.modelspace.pack) instead of a space's


@dataclass(frozen=True)
class PackSummary:
    """A written calibration pack: its directory and how many units, networks and held-out networks it holds."""

    directory: Path
    units: int
    networks: int
    held_out: int


def export_pack(
    directory: str | os.PathLike[str],
    *,
    device: str,
    space: SearchSpace,
    networks: int,
    held_out: int,
    seed: int = 0,
) -> PackSummary:
    """Write the pack to ``directory``, which must not exist yet (nothing is overwritten)."""
    target = new_pack_directory(directory)
    if networks < 1 or held_out < 0:
        raise DeviceError(f"a pack needs >= 1 fitting network and >= 0 held-out ones, got {networks} and {held_out}")
    study = random_sampling_study(seed=seed)
    candidates = [sample_candidate(space, study.ask()) for _ in range(networks + held_out)]
    unit_lists = [measurable_units(c.netspec(), c.policy) for c in candidates]
    batch = unit_batch(u for units in unit_lists for u in units)

    def models():
        for i, (key, onnx, shape) in enumerate(batch):
            yield f"models/u{i:04d}.onnx", key, ("empty" if key == EMPTY else "unit"), onnx, shape
        for i, candidate in enumerate(candidates):
            spec = candidate.netspec()
            onnx = export_network(spec, candidate.policy)
            yield f"models/net{i:03d}.onnx", f"net{i:03d}", "network", onnx, input_shape(spec)

    entries = [{"name": f"net{i:03d}", "role": "fit" if i < networks else "held_out", "candidate": candidate.to_dict(),
                "units": [u.key for u in units]} for i, (candidate, units) in enumerate(zip(candidates, unit_lists))]
    write_pack(target, models(), device=device, networks=entries,
               identity={"space": {"name": space.name, "fingerprint": space.fingerprint()}})
    return PackSummary(target, units=len(batch) - 1, networks=networks, held_out=held_out)


def new_pack_directory(directory: str | os.PathLike[str]) -> Path:
    """``directory`` as a Path; a DeviceError when it exists (a pack never overwrites anything)."""
    target = Path(directory)
    if target.exists():
        raise DeviceError(f"{target} already exists; give export_pack a new directory (nothing is overwritten)",
                          fields=("export_pack",))
    return target


def write_pack(
    target: Path,
    models: Iterable[tuple[str, str, str, bytes, tuple[int, ...]]],
    *,
    device: str,
    networks: list[dict[str, Any]],
    identity: dict[str, Any],
) -> dict[str, Any]:
    """Write a pack to the new directory ``target`` at once (staged beside it, then renamed): each of
    ``models`` (file, name, kind, ONNX bytes, input shape) as it comes, ``manifest.json`` (the
    models, the pack id, what the pack is of: ``identity``, e.g. {"space": ...}, and the whole
    ``networks`` with their roles) and the runner. Returns the manifest."""
    staging = make_temp_dir(target.parent, prefix=f".{target.name}.")  # the pack's own mode: umask's, not mkdtemp's 0700
    try:
        (staging / "models").mkdir()
        written = [_write_model(staging, file, onnx, name=name, kind=kind, shape=shape)
                   for file, name, kind, onnx, shape in models]
        pack_id = hashlib.sha256(json.dumps(written, sort_keys=True).encode()).hexdigest()[:16]
        manifest = {
            "schema": PACK_SCHEMA,
            "pack_id": pack_id,
            "device": device,
            **identity,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "int8_weights": host_int8_weights(),  # every model above was exported with it
            "models": written,
            "networks": networks,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        runner = resources.files("autoc.latency").joinpath("pack_runner.py.txt").read_text(encoding="utf-8")
        (staging / RUNNER).write_text(runner, encoding="utf-8")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _write_model(root: Path, relative: str, onnx: bytes, *, name: str, kind: str, shape) -> dict[str, Any]:
    (root / relative).write_bytes(onnx)
    return {"file": relative, "name": name, "kind": kind, "input_shape": list(shape)}


def load_manifest(pack_dir: Path) -> dict[str, Any]:
    """The manifest of the pack in ``pack_dir``; a missing or foreign one is a DeviceError."""
    path = pack_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeviceError(
            f"no {MANIFEST} in {pack_dir}; give pack_dir the directory 'autoc calibrate --export-pack' wrote",
            fields=("pack_dir",)
        ) from None
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON or not UTF-8 text
        raise DeviceError(f"cannot read {path} ({exc}); export the pack again") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != PACK_SCHEMA:
        raise DeviceError(f"{path} is not an autoc calibration pack manifest ({PACK_SCHEMA}); export the pack again")
    return manifest


def import_results(
    results: str | os.PathLike[str], *, device: str, pack_dir: str | os.PathLike[str] | None = None
) -> DeviceProfile:
    """The device profile built from a pack's RESULTS.csv (format in the module docstring)."""
    results = Path(results)
    manifest, figures, meta = read_results(results, pack_dir=pack_dir)
    if MODEL_PACK in manifest:
        raise DeviceError(f"{results} measured a pack of the model {manifest[MODEL_PACK]['model']}, not of a search "
                          "space: import it with autoc calibrate --import (autoc.modelspace.pack.import_model_results)")
    kinds = {m["name"]: m["kind"] for m in manifest["models"]}
    units = [n for n, kind in kinds.items() if kind in ("unit", "empty")]
    blocks = unit_times(units, [Measurement(*[figures[n]] * 4, repeats=1) for n in units])
    _check_units_above_empty(blocks, figures, results=results)
    return _profile_from(manifest, blocks, figures, device=device, meta=meta, source=results)


def read_results(
    results: str | os.PathLike[str], *, pack_dir: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Any], dict[str, float], dict[str, str]]:
    """(manifest, ms per model name, '# key: value' metadata) of a pack's RESULTS.csv, checked against
    the pack's manifest (``pack_dir``, default the CSV's directory): one row per model, each error one
    line naming the file and row."""
    results = Path(results)
    pack = Path(pack_dir) if pack_dir is not None else results.parent
    manifest = load_manifest(pack)
    table = read_csv(results, what="calibration results CSV")
    table.require(list(RESULT_COLUMNS), fix="write RESULTS.csv with the pack's run_pack.py (format: autoc.latency.pack)")
    if table.meta.get("pack", manifest["pack_id"]) != manifest["pack_id"]:
        raise DeviceError(
            f"{results} was measured from pack {table.meta['pack']!r}, but {pack / MANIFEST} is pack "
            f"{manifest['pack_id']!r}; give pack_dir the directory the results came from", fields=("pack_dir",)
        )
    kinds = {m["name"]: m["kind"] for m in manifest["models"]}
    figures: dict[str, float] = {}
    for row in table.rows:
        name = row.values["name"]
        if name not in kinds:
            raise table.error(row, f"model {name!r} is not in {pack / MANIFEST}; these results are from another pack")
        if row.values["kind"] != kinds[name]:
            raise table.error(row, f"kind {row.values['kind']!r} of {name!r} should be {kinds[name]!r} (see the manifest)")
        if name in figures:
            raise table.error(row, f"a second row for {name!r}; give one row per model")
        figures[name] = table.milliseconds(row, "ms")
    missing = [name for name in kinds if name not in figures]
    if missing:
        raise DeviceError(
            f"{results} lacks rows for {len(missing)} model(s) of the pack, e.g. {missing[:3]}; "
            "run run_pack.py to the end and import its complete RESULTS.csv"
        )
    return manifest, figures, table.meta


def _check_units_above_empty(blocks: dict[str, float], figures: dict[str, float], *, results: Path) -> None:
    """A unit's table time is what it costs beyond the empty model's session call; when no unit
    costs anything, every network would be predicted at 0 ms: refuse, and warn when most are 0."""
    free = [key for key, ms in blocks.items() if ms == 0.0]
    empty_ms, largest = figures[EMPTY], max((figures[key] for key in blocks), default=0.0)
    if blocks and len(free) == len(blocks):
        raise DeviceError(
            f"{results}: the {EMPTY!r} row ({empty_ms} ms) is at least every unit's time (largest {largest} ms), "
            "so every unit would cost 0 ms and the profile would predict 0 ms for any network; "
            "measure again with run_pack.py on an idle device and import the new RESULTS.csv"
        )
    if 2 * len(free) > len(blocks):
        log.warning(
            "%s: %d of %d units are no slower than the %r row (%s ms) and cost 0 ms in the profile, so its "
            "predictions are unreliable; measure again with run_pack.py on an idle device",
            results, len(free), len(blocks), EMPTY, empty_ms,
        )


def _profile_from(
    manifest: dict[str, Any], blocks: dict[str, float], figures: dict[str, float], *, device: str, meta, source: Path
) -> DeviceProfile:
    fit_sums, fit_int8, fit_ms, fit_switches, check = [], [], [], [], []
    for entry in manifest["networks"]:
        try:
            candidate = Candidate.from_dict(entry["candidate"])
            units = measurable_units(candidate.netspec(), candidate.policy)
        except AutocError as exc:
            raise DeviceError(f"network {entry['name']} of the pack no longer builds ({exc}); export a new pack") from None
        if [u.key for u in units] != entry["units"]:
            raise DeviceError(f"network {entry['name']} of the pack has other unit keys in this autoc; export a new pack")
        unit_sum = sum(blocks[u.key] for u in units)
        int8_sum = sum(blocks[u.key] for u in units if u.precision == "int8")
        switches = precision_transitions(u.precision for u in units)
        if entry["role"] == "fit":
            fit_sums.append(unit_sum)
            fit_int8.append(int8_sum)
            fit_ms.append(figures[entry["name"]])
            fit_switches.append(switches)
        else:
            check.append((entry["name"], unit_sum, switches, int8_sum, figures[entry["name"]]))
    correction = fit_correction(fit_sums, fit_ms, transitions=fit_switches, int8_sums=fit_int8)
    if check:
        validation = validation_figures(
            measured=[m for *_, m in check],
            predicted=[correction.apply(s, transitions=n, int8_ms=i) for _, s, n, i, _ in check],
            names=[name for name, *_ in check],
        )
    else:
        predicted = [
            correction.apply(s, transitions=n, int8_ms=i) for s, n, i in zip(fit_sums, fit_switches, fit_int8)
        ]
        validation = validation_figures(measured=fit_ms, predicted=predicted)
    validation |= {"in_sample": not check, "fit_networks": len(fit_ms), "results": str(source)}
    identity = DeviceIdentity(
        cpu_model=meta.get("cpu_model", "unknown"),
        logical_cores=_int(meta.get("logical_cores"), 0),
        threads=_int(meta.get("threads"), 1),
        runtime=meta.get("runtime", "onnxruntime"),
        runtime_version=meta.get("runtime_version", "unknown"),
        python=meta.get("python", ""),
        torch="",
        precisions=("fp32", "int8"),
        created=meta.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        int8_weights=manifest.get("int8_weights", INT8),
    )
    return DeviceProfile(
        device=device,
        identity=identity,
        blocks=blocks,
        correction=correction,
        validation=validation,
        source="pack",
        space=dict(manifest["space"]),
    )


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default
