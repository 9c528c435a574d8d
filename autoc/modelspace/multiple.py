"""The channel multiple a device's kernels run fast, read off the layer table.

CPU runtimes lay channels out in blocks (ONNX Runtime's NCHWc blocks are 8 channels wide with
AVX2, 16 with AVX-512; XNNPACK packs by its own tile): a conv with 57 output channels costs what
one with 64 does. Pruning to a count between two multiples then loses accuracy and saves no time,
so a compress study rounds every kept channel count to the multiple the table shows, not to one
assumed from the CPU's name.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Sequence

from autoc.modelspace.latency import Layer, LayerTable

MULTIPLES = (16, 8, 4, 2)  # tried largest first
# A count between two multiples must cost at least this share of the way from the multiple below
# to the one above: a padding runtime charges the whole step (share ~1), a linear one 1/multiple.
STEP_SHARE = 0.75


def reference_layer(layers: Sequence[Layer], table: LayerTable, *, threads: int = 1) -> Layer | None:
    """The conv whose output channels are probed: the slowest dense (not depthwise) conv with at
    least 32 output channels, at fp32 (the table times it where it lacks it)."""
    convs = [replace(layer, precision="fp32") for layer in layers
             if layer.kind == "conv" and not layer.depthwise and layer.groups == 1 and layer.cout >= 2 * MULTIPLES[0]]
    if not convs:
        return None
    table.measure(convs, threads=threads)
    return max(convs, key=lambda layer: table.units_ms[layer.key])


def fast_multiple(layers: Sequence[Layer], table: LayerTable, *, threads: int = 1) -> int:
    """The largest of MULTIPLES whose step the reference conv's time shows: every output channel
    count between the multiple below its count and the multiple above costs at least STEP_SHARE of
    the way from the lower multiple's time to the upper's; 1 when no multiple's does (every channel
    saves time) or the model has no conv to probe. ``table`` gives unit times to start from; the
    probes are timed into a copy: a unit timed in a small batch runs with warmer caches than in a
    calibration's, so their times are only compared with each other, never kept."""
    table = copy.copy(table)
    table.units_ms = dict(table.units_ms)
    reference = reference_layer(layers, table, threads=threads)
    if reference is None:
        return 1
    for multiple in MULTIPLES:
        top = (reference.cout // multiple) * multiple
        probes = [replace(reference, cout=count) for count in range(top - multiple, top + 1)]
        table.measure(probes, threads=threads)
        times = [table.units_ms[p.key] for p in probes]
        low, high = times[0], times[-1]
        if min(times[1:-1]) >= min(low, high) + STEP_SHARE * max(high - low, 0.0):
            return multiple
    return 1
