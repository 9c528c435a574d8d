"""A candidate as a plain per-layer table (CSV): shape, compression, MACs and predicted time.

The latency model times units (stem, whole blocks, head + classifier), not single convs,
because that is how the runtime runs them; a layer's ``predicted_ms`` is its unit's time
shared among the unit's layers by MACs. A last ``overhead`` row holds the whole-network
correction, so the column sums to the predicted latency of the network.
"""
from __future__ import annotations

import csv
import io
from dataclasses import astuple, dataclass, fields

from autoc.arch.netspec import HEAD, ConvSpec, NetSpec
from autoc.candidate import Candidate
from autoc.latency.model import LatencyModel

CLASSIFIER = "classifier"
OVERHEAD = "overhead"


@dataclass(frozen=True)
class LayerRow:
    """One layer of a candidate as the CSV export lists it: shape, pruning, precision, MACs, predicted ms."""

    layer: str
    unit: str
    kind: str  # conv, depthwise, grouped, linear, or overhead
    in_channels: int | None
    out_channels: int | None
    full_out_channels: int | None  # before pruning
    keep_ratio: float | None  # as the policy asks; out_channels is it rounded to a multiple of 8
    precision: str
    weight_bits: int | None
    act_bits: int | None
    macs: int | None
    predicted_ms: float


def layer_rows(candidate: Candidate, latency: LatencyModel) -> list[LayerRow]:
    """A row per conv of ``candidate`` (its unit's predicted ms shared by MACs), then the overhead row."""
    spec, full = candidate.netspec(), candidate.full_netspec()
    full_out = {c.name: c.cout for c in full.convs()}
    unit_ms = {name: ms for name, _, ms in latency.breakdown(spec, candidate.policy)}
    rows: list[LayerRow] = []
    for unit, members in _units(spec):
        total = sum(macs for _, macs in members) or 1
        for conv, macs in members:
            rows.append(_row(candidate, conv, unit=unit, macs=macs, full_out=full_out, ms=unit_ms.get(unit, 0.0) * macs / total))
    rows.append(LayerRow(OVERHEAD, OVERHEAD, OVERHEAD, None, None, None, None, "", None, None, None, unit_ms.get(OVERHEAD, 0.0)))
    return rows


def _units(spec: NetSpec) -> list[tuple[str, list[tuple[ConvSpec | None, int]]]]:
    """(unit name, [(conv or None for the classifier, MACs)]) in network order."""
    owner = {conv.name: block.name for block in spec.blocks for conv in block.convs}
    units: list[tuple[str, list[tuple[ConvSpec | None, int]]]] = []
    for conv, resolution in spec.conv_resolutions():
        unit = owner.get(conv.name, "stem" if conv is spec.stem else HEAD)
        if not units or units[-1][0] != unit:
            units.append((unit, []))
        units[-1][1].append((conv, _conv_macs(conv, resolution)))
    if units[-1][0] != HEAD:  # no head conv: the classifier alone
        units.append((HEAD, []))
    units[-1][1].append((None, spec.classifier_in * spec.num_classes))
    return units


def _row(candidate: Candidate, conv: ConvSpec | None, *, unit: str, macs: int, full_out: dict[str, int], ms: float) -> LayerRow:
    spec = candidate.netspec()
    if conv is None:  # the classifier runs fp32 (as the fake-quantised model does) and is never pruned
        return LayerRow(
            CLASSIFIER, unit, "linear", spec.classifier_in, spec.num_classes, spec.num_classes, 1.0,
            "fp32", 32, 32, macs, ms,
        )
    layer = candidate.policy.get(conv.name)
    kind = "depthwise" if conv.depthwise else "grouped" if conv.grouped else "conv"
    return LayerRow(
        conv.name, unit, kind, conv.cin, conv.cout, full_out[conv.name], layer.keep_ratio,
        layer.precision, layer.weight_bits, layer.act_bits, macs, ms,
    )


def _conv_macs(conv: ConvSpec, out_resolution: int) -> int:
    return conv.cout * (conv.cin // conv.groups) * conv.kernel * conv.kernel * out_resolution * out_resolution


def rows_to_csv(rows: list[LayerRow]) -> str:
    """The rows as CSV text with a header of the LayerRow field names."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([f.name for f in fields(LayerRow)])
    for row in rows:
        writer.writerow(["" if v is None else f"{v:.6f}" if isinstance(v, float) else v for v in astuple(row)])
    return buffer.getvalue()
