"""A policy as the config lists of NNI 3.x compression (``nni.compression``).

Both lists apply to the *unpruned* architecture (``build_model(candidate.full_netspec())``),
whose module names match autoc's layers (the Conv2d of layer ``stages.1.0.expand`` is
``stages.1.0.expand.conv``):

- ``pruning``: one entry per pruned channel group, output-channel granularity, with a
  sparse ratio from which NNI's own arithmetic gives exactly autoc's channel count (see
  ``nni_sparse_ratio``); layers that must keep the same channels (residual chains, an expand
  conv and its depthwise conv) share a ``dependency_group_id``.
- ``quantization``: one entry per weight bit width, with per-output-channel symmetric signed
  weights and per-tensor affine unsigned 8-bit inputs, the scheme autoc fine-tuned and exports.

Both follow NNI 3.0's config schema (``nni/compression/base/config.py``,
``default_config_schema``): a quantisation entry needs a top-level ``quant_dtype`` (the
default of its targets), and NNI calls a weight's per-channel granularity ``out_channel``
(its ``per_channel`` is for inputs and outputs only).
"""
from __future__ import annotations

import math
from typing import Any

from autoc.arch.netspec import frozen_groups, group_producers
from autoc.candidate import Candidate

FORMAT = "nni.compression/3"


def nni_config(candidate: Candidate) -> dict[str, Any]:
    """The candidate's pruning and quantisation as NNI 3.x config lists, for the unpruned architecture."""
    return {
        "format": FORMAT,
        "applies_to": "unpruned architecture; module names are autoc layer names + '.conv'",
        "pruning": pruning_config_list(candidate),
        "quantization": quantization_config_list(candidate),
    }


def pruning_config_list(candidate: Candidate) -> list[dict[str, Any]]:
    """NNI pruning entries: each pruned channel group's convs with their sparse ratio."""
    full, pruned = candidate.full_netspec(), candidate.netspec()
    kept = {c.out_group: c.cout for c in pruned.convs()}
    frozen = frozen_groups(full)
    entries = []
    for group, convs in group_producers(full).items():
        full_width = convs[0].cout
        if group in frozen or kept[group] >= full_width:
            continue
        entry: dict[str, Any] = {
            "op_names": [f"{c.name}.conv" for c in convs],
            "op_types": ["Conv2d"],
            "sparse_ratio": nni_sparse_ratio(full_width, kept=kept[group]),
            "granularity": "out_channel",
        }
        if len(convs) > 1:
            entry["dependency_group_id"] = group
        entries.append(entry)
    return entries


def nni_pruned_count(channels: int, sparse_ratio: float) -> int:
    """How many of ``channels`` output channels NNI 3.0 prunes at ``sparse_ratio``.

    NNI's rule (``nni/compression/pruning/tools/sparse_gen.py``, ``_ratio_mask``): ratios 0
    and 1 keep all and none; otherwise ``int(numel // block_number * sparse_ratio)``, which for
    ``out_channel`` granularity is ``int(channels * sparse_ratio)``, truncated, not rounded.
    """
    if sparse_ratio == 0.0:
        return 0
    if sparse_ratio == 1.0:
        return channels
    return int(channels * sparse_ratio)


def nni_sparse_ratio(channels: int, *, kept: int) -> float:
    """The sparse ratio closest to ``1 - kept / channels`` with which NNI keeps exactly ``kept``
    of ``channels`` output channels.

    The plain quotient can land a hair below the integer after NNI multiplies it back
    (``22 * (15 / 22)`` is 14.999999999999998), and NNI truncates, which would keep one
    channel more; stepping to the next float up fixes that. The value is written as JSON, whose repr round-trips exactly.
    """
    if not 1 <= kept <= channels:
        raise ValueError(f"kept must lie in 1..{channels}, got {kept}")
    pruned = channels - kept
    ratio = pruned / channels
    while nni_pruned_count(channels, ratio) < pruned:
        ratio = math.nextafter(ratio, 1.0)
    return ratio


def quantization_config_list(candidate: Candidate) -> list[dict[str, Any]]:
    """NNI quantisation entries: the int8 convs by weight bits (the classifier stays fp32, as autoc's
    fake-quantised model and its int8 export run it)."""
    by_bits: dict[int, list[str]] = {}
    for name in candidate.full_netspec().layer_names():
        layer = candidate.policy.get(name)
        if layer.precision == "int8":
            by_bits.setdefault(layer.weight_bits, []).append(f"{name}.conv")
    return [_quant_entry(names, op_type="Conv2d", bits=bits) for bits, names in sorted(by_bits.items())]


def _quant_entry(names: list[str], *, op_type: str, bits: int) -> dict[str, Any]:
    return {
        "op_names": names,
        "op_types": [op_type],
        "target_names": ["_input_", "weight"],
        # NNI's schema requires the entry's own quant_dtype (its targets' default); each target overrides it.
        "quant_dtype": f"int{bits}",
        "target_settings": {
            "_input_": {"quant_dtype": "uint8", "quant_scheme": "affine", "granularity": "default"},
            "weight": {"quant_dtype": f"int{bits}", "quant_scheme": "symmetric", "granularity": "out_channel"},
        },
    }
