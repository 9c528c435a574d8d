"""How int8 weights are stored in an exported graph, chosen for the CPU that runs it.

ONNX Runtime fuses QDQ int8 convs into QLinearConv and picks its integer kernel by the
weights' type. With int8 weights (uint8 activations x int8 weights) an x86 CPU without VNNI
multiplies with ``vpmaddubsw``, which adds pairs of products in int16 with saturation: on a
network with wide activation ranges the exported model loses points of accuracy that the
fake-quantised model the search scored never lost. uint8 weights take another kernel
(widened to int16 before multiplying) that cannot saturate.

Both schemes hold the same numbers: a symmetric int8 weight ``q`` in -127..127 is stored as
``q + 128`` with zero point 128, so the arithmetic, and the accuracy the search estimated with
its symmetric per-channel fake quantiser, are unchanged. Only the kernel, and so the speed,
differs; a latency profile therefore records the scheme it was measured with.
"""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from autoc.errors import DeviceError

INT8 = "int8"
UINT8 = "uint8"
INT8_WEIGHTS = (INT8, UINT8)
# Overrides the host's choice, e.g. to export a calibration pack for an ARM board from an
# x86 host without VNNI: AUTOC_INT8_WEIGHTS=int8.
ENV_VAR = "AUTOC_INT8_WEIGHTS"
# CPU flags (Linux /proc/cpuinfo) of the x86 instructions that add u8 x s8 products in int32.
_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
_X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def check_int8_weights(scheme: str) -> str:
    """``scheme`` if it is one autoc exports, else a ValueError naming the choices."""
    if scheme not in INT8_WEIGHTS:
        raise ValueError(f"int8 weight scheme {scheme!r} is unknown; use one of {', '.join(INT8_WEIGHTS)}")
    return scheme


def host_int8_weights() -> str:
    """The scheme for this machine: uint8 on an x86 CPU without VNNI, int8 elsewhere
    (``AUTOC_INT8_WEIGHTS`` overrides; a DeviceError, one line for the CLI, when it names no scheme)."""
    forced = os.environ.get(ENV_VAR)
    if forced:
        if forced not in INT8_WEIGHTS:
            raise DeviceError(f"{ENV_VAR}={forced!r} is not a scheme; set it to one of {', '.join(INT8_WEIGHTS)} or unset it")
        return forced
    return _detected_scheme()


@functools.cache
def _detected_scheme() -> str:
    return scheme_for_cpu(machine=platform.machine(), flags=cpu_flags())


def scheme_for_cpu(*, machine: str, flags: frozenset[str] | None) -> str:
    """uint8 for an x86 ``machine`` whose ``flags`` show no VNNI; int8 for other machines, and
    when the flags are unknown (None: no /proc/cpuinfo)."""
    if machine.lower() not in _X86 or flags is None:
        return INT8
    return INT8 if flags & _VNNI_FLAGS else UINT8


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The first CPU's feature flags, or None where the file does not list them."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return None


def store_weights_as_uint8(model: onnx.ModelProto) -> int:
    """Rewrite every int8 weight a DequantizeLinear reads as uint8 + 128 (zero point + 128),
    in place; returns how many. The dequantised values are bit for bit the same."""
    initializers = {init.name: init for init in model.graph.initializer}
    converted = 0
    shifted_names: set[str] = set()  # a tensor two nodes read is shifted once
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        weight, zero_point = initializers.get(node.input[0]), initializers.get(node.input[2])
        if weight is None or zero_point is None or weight.data_type != onnx.TensorProto.INT8:
            continue
        for tensor in (weight, zero_point):
            if tensor.name in shifted_names:
                continue
            shifted_names.add(tensor.name)
            shifted = numpy_helper.to_array(tensor).astype(np.int16) + 128
            tensor.CopyFrom(numpy_helper.from_array(shifted.astype(np.uint8), tensor.name))
        converted += 1
    return converted
