"""Once-for-All style block lookup tables (e.g. ``ofa-note10-lut/160_lookup_table.yaml``) as device profiles.

Entries are YAML mappings ``KEY: {count, mean, std}`` (mean in ms). Translated keys:

* ``Conv-input:HxWxC-output:H2xW2xC2``: the stem (3x3 conv, stride H / H2).
* ``expanded_conv-input:HxWxC-output:H2xW2xC2-expand:E-kernel:K-stride:S-idskip:I-se:0-hs:0``:
  an inverted-residual block (no expand conv when E == C; residual when I == 1). With se:1 it
  has squeeze-excite after the depthwise conv (reduced width ``make_divisible(E / 4)``, as in OFA's
  MobileNetV3 and autoc's default ``se_ratio``); with hs:1 its activation is h-swish.
* ``Conv_1`` + ``AvgPool2D`` + ``Conv_2`` + ``Logits``: the head (1x1 conv, pool, classifier).
  OFA's head has one more 1x1 conv (Conv_2) than autoc's; it is counted in, so the head
  time is an upper bound. Heads for ``OTHER_CLASSES`` classes scale the Logits time by the count.

OFA's blocks without hs:1 use ReLU; ReLU and ReLU6 cost the same once fused into the conv, so keys
are written for both (h-swish blocks only for hswish). The stem and head keys are written for all
three: OFA's run h-swish, and ReLU spaces used them before. The table is fp32: int8 layers are
predicted at their fp32 time. Several tables (one per resolution) make one profile; a block shape
two of them time takes the mean. A space is accepted only if the tables cover its blocks (checked
on the space's smallest networks and on random samples); otherwise the error names the uncovered blocks.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import yaml

from autoc.arch.config import SE_RATIO
from autoc.arch.netspec import make_divisible
from autoc.errors import AutocError, DeviceError
from autoc.latency.blocks import network_units
from autoc.latency.profile import DeviceProfile, data_identity
from autoc.space import SearchSpace, random_sampling_study, sample_candidate

ACTIVATIONS = ("relu", "relu6")
# OFA's stem and head run h-swish (MobileNetV3); their keys are written for it too, beside the
# ReLU ones that spaces with ReLU stems have used since before SE/h-swish blocks existed.
STEM_HEAD_ACTIVATIONS = (*ACTIVATIONS, "hswish")
_SHAPE = r"(\d+)x(\d+)x(\d+)"
_BLOCK = re.compile(
    rf"expanded_conv-input:{_SHAPE}-output:{_SHAPE}-expand:(\d+)-kernel:(\d+)-stride:(\d+)-idskip:([01])-se:([01])-hs:([01])$"
)
_STEM = re.compile(rf"Conv-input:{_SHAPE}-output:{_SHAPE}$")
_HEAD_PARTS = {
    "conv1": re.compile(rf"Conv_1-input:{_SHAPE}-output:{_SHAPE}$"),
    "pool": re.compile(rf"AvgPool2D-input:{_SHAPE}-output:{_SHAPE}$"),
    "conv2": re.compile(rf"Conv_2-input:{_SHAPE}-output:{_SHAPE}$"),
    "logits": re.compile(rf"Logits-input:{_SHAPE}-output:(\d+)$"),
}
COVERAGE_SAMPLES = 100
# Class counts of autoc's bundled and registered datasets (digits, CIFAR-10, CIFAR-100) besides the
# table's own (ImageNet's 1000): their head is priced with the classifier's time scaled by the class
# count (a matrix-vector product's time grows with its rows), so a search on them needs no other table.
OTHER_CLASSES = (10, 100)


def read_ofa_lut(path: str | Path) -> tuple[dict[str, float], int]:
    """(autoc unit key -> ms, number of OFA entries skipped as having no autoc counterpart)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeviceError(f"no OFA lookup table at {path}; check the path") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DeviceError(f"cannot read OFA lookup table {path} ({exc}); give an OFA *_lookup_table.yaml") from None
    if not isinstance(data, dict) or not data:
        raise DeviceError(f"{path} is not an OFA lookup table (a mapping of block keys to {{mean, std, count}})")
    means = {str(k): _mean(path, k, v) for k, v in data.items()}
    table: dict[str, float] = {}
    skipped = 0
    head: dict[str, tuple[re.Match, float]] = {}
    for key, ms in means.items():
        if m := _BLOCK.match(key):
            h, _, c, h2, _, c2, e, k, s, idskip, se, hs = map(int, m.groups())
            expand = [] if e == c else [f"k1s1o{e}g1"]
            convs = [*expand, f"k{k}s{s}o{e}gdw", f"k1s1o{c2}g1lin"]
            if se:
                convs.append(f"se{make_divisible(e * SE_RATIO)}")
            for act in ("hswish",) if hs else ACTIVATIONS:
                table["-".join(["ir", f"r{h}", f"c{c}", *convs, f"res{idskip}", act, "fp32"])] = ms
        elif m := _STEM.match(key):
            h, _, c, h2, _, c2 = map(int, m.groups())
            for act in STEM_HEAD_ACTIVATIONS:
                table[f"stem-r{h}-c{c}-k3s{h // h2}o{c2}g1-{act}-fp32"] = ms
        elif part := next((name for name, rx in _HEAD_PARTS.items() if rx.match(key)), None):
            head[part] = (_HEAD_PARTS[part].match(key), ms)
        else:
            skipped += 1
    if set(head) == set(_HEAD_PARTS):
        h, _, c, _, _, c1 = map(int, head["conv1"][0].groups())
        classes = int(head["logits"][0].groups()[-1])
        rest = sum(ms for part, (_, ms) in head.items() if part != "logits")
        logits = head["logits"][1]
        for n in sorted({classes, *OTHER_CLASSES}):
            for act in STEM_HEAD_ACTIVATIONS:
                table[f"head-r{h}-c{c}-k1s1o{c1}g1-fc{n}-{act}-fp32"] = rest + logits * n / classes
    return table, skipped


def _mean(path: Path, key, value) -> float:
    try:
        ms = float(value["mean"])
    except (TypeError, KeyError, ValueError):
        raise DeviceError(f"{path}: entry {key!r} has no numeric 'mean' (ms); an OFA entry is {{count, mean, std}}") from None
    if not ms > 0:
        raise DeviceError(f"{path}: entry {key!r} has mean {value['mean']!r}; a latency must be > 0 ms")
    return ms


def ofa_profile(paths: str | Path | Sequence[str | Path], *, device: str, space: SearchSpace, seed: int = 0,
                created: str | None = None) -> DeviceProfile:
    """A profile from the OFA table(s) at ``paths`` (one per resolution, e.g. Note10's five), if
    together they cover the blocks of ``space``. ``created``: the identity's date (None: now)."""
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    times: dict[str, list[float]] = {}
    skipped = 0
    for path in paths:
        one, left = read_ofa_lut(path)
        for key, ms in one.items():
            times.setdefault(key, []).append(ms)
        skipped += left
    # A shape two tables both time (6 px feature maps at 176 and 192, 7 px at 208 and 224) is the
    # same block measured twice: its mean is the better estimate (they differ by well under 1%).
    table = {key: sum(ms) / len(ms) for key, ms in times.items()}
    names = ", ".join(p.name for p in paths)
    uncovered = uncovered_units(table, space, seed=seed)
    if uncovered:
        shown = "; ".join(f"{name} ({key})" for name, key in uncovered[:5])
        raise DeviceError(
            f"{names} does not cover space {space.name!r}: {len(uncovered)} block shape(s) missing, e.g. {shown}; "
            "use a space whose blocks the table has (OFA tables cover MobileNetV3 shapes at 160-224 px, e.g. "
            "the shipped ofa-mbv3), or measure the device with a calibration pack (autoc calibrate --export-pack)"
        )
    profile = DeviceProfile(
        device=device,
        identity=data_identity(f"Once-for-All lookup table{'s' if len(paths) > 1 else ''} {names}", created=created),
        blocks=table,
        source="ofa-lut",
        space={"name": space.name, "fingerprint": space.fingerprint()},
    )
    return replace(profile, validation={
        "n": 0, "source_file": names, "resolutions": list(profile.resolutions),
        "note": f"block table only ({len(table)} keys, {skipped} OFA entries skipped); "
                "no whole-network measurements to validate against",
    })


def uncovered_units(table: dict[str, float], space: SearchSpace, *, seed: int) -> list[tuple[str, str]]:
    """(unit name, key) of fp32 units the space's smallest and sampled networks need and ``table`` lacks."""
    study = random_sampling_study(seed=seed)
    candidates = list(space.minimal_candidates()) + [sample_candidate(space, study.ask()) for _ in range(COVERAGE_SAMPLES)]
    missing: dict[str, str] = {}
    for candidate in candidates:
        try:
            units = network_units(candidate.netspec(), candidate.policy)
        except AutocError:
            continue
        for unit in units:
            key = unit.key.removesuffix("-int8") + "-fp32" if unit.precision == "int8" else unit.key
            if unit.measurable and key not in table:
                missing.setdefault(key, unit.name)
    return [(name, key) for key, name in missing.items()]
