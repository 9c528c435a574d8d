"""A user's model timed on a device that cannot run autoc: its calibration pack and device table.

``export_model_pack`` writes a calibration pack (``autoc.latency.pack``'s format and runner) holding
every unit a compress search of the model can time (each conv/linear layer alone at every channel
count the keep choices reach, fp32 and int8 where offered) and the compressed variants the host
calibration would time whole (fitting and held-out, ``calibration_policies``). Its manifest names
the model reference, input size, classes, keep choices and the model's structure digest: the
weights-independent identity (every layer's unit key and every channel group) a later import and
`autoc compress --device NAME` check against.

``import_model_results`` turns the device's RESULTS.csv into a :class:`DeviceTable` (the model's
:class:`LayerTable` with the correction fitted on the pack's fitting variants and the error on its
held-out ones), stored at ``model_table_path`` (one file per model structure under
``runs/devices/models/NAME/``); ``device_table`` loads it for a compress run and refuses, naming the
calibrate command, when it is missing or lacks units the search can pick.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from autoc.errors import DeviceError
from autoc.files import write_text_atomic
from autoc.latency.calibrate import fit_correction
from autoc.latency.pack import MODEL_PACK, PackSummary, new_pack_directory, read_results, write_pack
from autoc.latency.validate import validation_figures
from autoc.modelspace.groups import ModelStructure
from autoc.modelspace.latency import (Layer, LayerTable, calibration_policies, model_layers, network_program,
                                      policy_layers, reachable_layers)

TABLE_SCHEMA = "autoc.model-latency/1"


def structure_digest(layers: Sequence[Layer], structure: ModelStructure) -> str:
    """The model's identity for latency, independent of its weights: its layers' unit keys, in order,
    and its channel groups and the layers offered int8 (16 hex digits)."""
    identity = {"layers": [layer.key for layer in layers],
                "groups": [[g.name, g.channels, [list(t) for t in g.ties]] for g in structure.groups],
                "convs": list(structure.convs)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def model_table_path(device: str, *, model: str, digest: str, runs_dir: Path) -> Path:
    """Where ``device``'s table for the model ``model`` of structure ``digest`` lives: several models
    (and sizes of one model) per device, side by side."""
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in model)
    return Path(runs_dir) / "devices" / "models" / device / f"{slug}-{digest}.json"


def calibrate_command(device: str, *, model: str, input_size: int, num_classes: int,
                      keep_choices: Sequence[float]) -> str:
    """The `autoc calibrate` command that writes the pack for this model, keep choices and size."""
    keep = " ".join(f"{k:g}" for k in keep_choices)
    return (f"autoc calibrate --device {device} --model {model} --input-size {input_size} --num-classes {num_classes} "
            f"--keep-choices {keep} --export-pack PACK_DIR")


@dataclass(frozen=True)
class DeviceTable:
    """A device's measured latency table for one model structure, and where it came from."""

    device: str
    model: str  # the model reference the pack was exported for
    digest: str  # structure_digest of that model
    input_size: int
    num_classes: int
    keep_choices: tuple[float, ...]
    table: LayerTable
    held_out_errors: tuple[float, ...]  # (predicted - measured) / measured per held-out variant
    validation: dict = field(default_factory=dict)
    identity: dict = field(default_factory=dict)  # the device as run_pack.py described it
    source: str = ""  # the RESULTS.csv imported
    pack: str = ""  # its pack id
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"schema": TABLE_SCHEMA, "device": self.device, "model": self.model, "structure": self.digest,
                "input_size": self.input_size, "num_classes": self.num_classes, "keep_choices": list(self.keep_choices),
                "source": self.source, "pack": self.pack, "created": self.created, "identity": self.identity,
                "held_out_errors": list(self.held_out_errors), "validation": self.validation,
                "table": self.table.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DeviceTable":
        table = LayerTable.from_dict(data["table"])
        table.device = data["device"]  # imported: never measured on this host
        return cls(device=data["device"], model=data["model"], digest=data["structure"],
                   input_size=int(data["input_size"]), num_classes=int(data["num_classes"]),
                   keep_choices=tuple(data["keep_choices"]), table=table,
                   held_out_errors=tuple(data["held_out_errors"]), validation=dict(data.get("validation", {})),
                   identity=dict(data.get("identity", {})), source=data.get("source", ""),
                   pack=data.get("pack", ""), created=data.get("created", ""))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")


def model_tables(runs_dir: Path) -> list[tuple[Path, DeviceTable | None, str]]:
    """Every model table under ``runs_dir`` (device by device): (file, table or None, why unreadable)."""
    found = []
    for path in sorted((Path(runs_dir) / "devices" / "models").glob("*/*.json")):
        try:
            found.append((path, DeviceTable.from_dict(json.loads(path.read_text(encoding="utf-8"))), ""))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            found.append((path, None, f"{type(exc).__name__}: {exc}"))
    return found


def export_model_pack(directory: str | os.PathLike[str], *, device: str, model: nn.Module, reference: str,
                      structure: ModelStructure, example_input: torch.Tensor, num_classes: int,
                      keep_choices: Sequence[float], seed: int = 0) -> PackSummary:
    """Write the calibration pack of ``model`` (the model ``reference`` names, analysed as ``structure``
    on inputs like ``example_input``) to the new directory ``directory``."""
    target = new_pack_directory(directory)
    keep_choices = tuple(sorted(set(keep_choices)))
    layers = model_layers(model, example_input)
    units = reachable_layers(layers, structure, keep_choices=keep_choices)
    fit, held = calibration_policies(structure, keep_choices=keep_choices, seed=seed)
    variants = [*fit, *held]
    shape = tuple(example_input[:1].shape)

    def models():
        for i, unit in enumerate(units):
            program, unit_shape = unit.program()
            yield f"models/u{i:04d}.onnx", unit.key, "unit", program, unit_shape
        for i, policy in enumerate(variants):
            yield f"models/net{i:03d}.onnx", f"net{i:03d}", "network", network_program(
                model, policy, example_input=example_input[:1]), shape

    entries = [{"name": f"net{i:03d}", "role": "fit" if i < len(fit) else "held_out",
                "units": [layer.key for layer in policy_layers(layers, structure, policy)]}
               for i, policy in enumerate(variants)]
    identity = {"model": reference, "structure": structure_digest(layers, structure),
                "input_size": int(example_input.shape[-1]), "num_classes": num_classes,
                "keep_choices": list(keep_choices), "seed": seed}
    write_pack(target, models(), device=device, networks=entries, identity={MODEL_PACK: identity})
    return PackSummary(target, units=len(units), networks=len(fit), held_out=len(held))


def import_model_results(results: str | os.PathLike[str], *, device: str,
                         pack_dir: str | os.PathLike[str] | None = None) -> DeviceTable:
    """The device table built from the RESULTS.csv of a model's pack (checked as any pack's results)."""
    results = Path(results)
    manifest, figures, meta = read_results(results, pack_dir=pack_dir)
    identity = manifest.get(MODEL_PACK)
    if identity is None:
        raise DeviceError(f"{results} measured a pack of search space {manifest.get('space', {}).get('name')!r}, "
                          "not of a model: import it without --model (autoc.latency.pack.import_results)")
    units = {m["name"]: figures[m["name"]] for m in manifest["models"] if m["kind"] == "unit"}
    table = LayerTable(units_ms=units, device=device)
    fit_sums, fit_ms, held = [], [], []
    for entry in manifest["networks"]:
        unknown = [key for key in entry["units"] if key not in units]
        if unknown:
            raise DeviceError(f"network {entry['name']} of the pack uses unit {unknown[0]} the pack does not hold; "
                              "export a new pack")
        sums = table.key_sums(entry["units"])
        if entry["role"] == "fit":
            fit_sums.append(sums)
            fit_ms.append(figures[entry["name"]])
        else:
            held.append((entry["name"], entry["units"], figures[entry["name"]]))
    table.correction = fit_correction([s[0] for s in fit_sums], fit_ms, transitions=[s[2] for s in fit_sums],
                                      int8_sums=[s[1] for s in fit_sums])
    predicted = [table.predict_keys(keys) for _, keys, _ in held]
    errors = tuple((p - ms) / ms for p, (_, _, ms) in zip(predicted, held))
    validation = validation_figures(measured=[ms for *_, ms in held], predicted=predicted,
                                    names=[name for name, *_ in held]) if held else {}
    return DeviceTable(device=device, model=identity["model"], digest=identity["structure"],
                       input_size=identity["input_size"], num_classes=identity["num_classes"],
                       keep_choices=tuple(identity["keep_choices"]), table=table, held_out_errors=errors,
                       validation={**validation, "fit_networks": len(fit_ms)}, identity=dict(meta),
                       source=str(results.resolve()), pack=manifest["pack_id"],
                       created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def device_table(device: str, *, model: str, layers: Sequence[Layer], structure: ModelStructure, input_size: int,
                 num_classes: int, keep_choices: Sequence[float], runs_dir: Path) -> DeviceTable:
    """``device``'s imported table for this model structure, holding every unit a search with
    ``keep_choices`` can time; a DeviceError naming what is missing and the calibrate command otherwise."""
    digest = structure_digest(layers, structure)
    path = model_table_path(device, model=model, digest=digest, runs_dir=runs_dir)
    command = calibrate_command(device, model=model, input_size=input_size, num_classes=num_classes,
                                keep_choices=keep_choices)
    then = (f"run python3 run_pack.py from PACK_DIR on {device}, then autoc calibrate --device {device} "
            "--import PACK_DIR/RESULTS.csv")
    if not path.is_file():
        others = sorted(p.name for p in path.parent.glob("*.json"))
        have = f" (it has tables for: {', '.join(others)})" if others else ""
        raise DeviceError(f"device {device!r} has no latency table for {model} at {input_size} px with "
                          f"{num_classes} classes (structure {digest}){have}: make one with {command}, {then}")
    try:
        found = DeviceTable.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeviceError(f"cannot read {path} ({type(exc).__name__}: {exc}); import the pack's RESULTS.csv "
                          "again") from None
    missing = found.table.missing(reachable_layers(layers, structure, keep_choices=keep_choices))
    if missing:
        raise DeviceError(f"the table of device {device!r} for {model} ({path}) lacks {len(missing)} unit(s) that keep "
                          f"choices {' '.join(f'{k:g}' for k in keep_choices)} reach, e.g. {missing[0].key} (it was "
                          f"made for keep choices {' '.join(f'{k:g}' for k in found.keep_choices)}): make it with "
                          f"{command}, {then}")
    return found
