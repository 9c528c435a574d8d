"""nn.Module -> ONNX bytes: fp32, or int8 QDQ on the layers a policy marks int8.

Layer names are module paths (``stem``, ``stages.2.1.expand``, ``head``). The TorchScript
exporter names every node after the module scope that emitted it (``/stages.2.1/expand/Conv``),
so a node's layer is its scope joined with dots. The mapping is checked against the model's
conv modules, never guessed: if a future exporter renames nodes, export fails loudly.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import AbstractSet, Iterator

import numpy as np
import onnx
import torch
from torch import nn

from autoc.errors import PolicyError

# The classifier (and the pooling before it) runs at the precision of the head unit.
HEAD = "head"
_HEAD_FOLLOWERS = ("", "classifier")
CALIBRATION_SAMPLES = 8


def export_onnx(
    model: nn.Module,
    *,
    input_shape: tuple[int, int, int, int],
    int8_layers: AbstractSet[str] = frozenset(),
    calibration: np.ndarray | None = None,
    opset: int = 17,
) -> bytes:
    """Export ``model`` (eval mode) with input ``input`` and output ``logits``.

    ``int8_layers`` get ONNX Runtime static QDQ quantisation (per-channel symmetric int8
    weights, uint8 activations), calibrated on ``calibration`` (N, C, H, W) or, when None,
    on random normal data; every other node stays fp32.
    """
    fp32 = _export_fp32(model, input_shape=input_shape, opset=opset)
    if not int8_layers:
        return fp32.SerializeToString()
    nodes = quantizable_nodes(fp32, conv_layers=_conv_layer_names(model), int8_layers=set(int8_layers))
    return _quantize(fp32, nodes=nodes, input_shape=input_shape, calibration=calibration)


def _export_fp32(model: nn.Module, *, input_shape: tuple[int, int, int, int], opset: int) -> onnx.ModelProto:
    was_training = model.training
    model.eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # dynamo=False is the legacy exporter on purpose (faster, stable scoped names).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            torch.onnx.export(
                model,
                (torch.zeros(input_shape),),
                buffer,
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                opset_version=opset,
                do_constant_folding=True,  # folds BatchNorm into the conv weights
            )
    finally:
        model.train(was_training)
    return onnx.load_from_string(buffer.getvalue())


def node_scope(node: onnx.NodeProto) -> str:
    """Module path of the scope that emitted ``node`` ('' for the model's own forward)."""
    parts = node.name.lstrip("/").split("/")
    return ".".join(parts[:-1])


def _conv_layer_names(model: nn.Module) -> set[str]:
    """Module paths of the modules that own exactly one conv (ConvBNAct-like or bare Conv2d)."""
    names = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            # ConvBNAct keeps its Conv2d as ``.conv`` but calls conv2d itself, so the
            # exported node sits in the parent's scope.
            parent, _, leaf = name.rpartition(".")
            names.add(parent if leaf == "conv" else name)
    return names


def _within(scope: str, prefix: str) -> bool:
    return scope == prefix or scope.startswith(prefix + ".")


def quantizable_nodes(
    graph_model: onnx.ModelProto, *, conv_layers: set[str], int8_layers: set[str]
) -> list[str]:
    """Names of the ONNX nodes that run int8 when ``int8_layers`` do.

    A layer owns every node in its scope (conv, activation). Glue nodes outside any layer
    (residual Add, channel shuffle) go int8 when all the layers of their enclosing module
    do; the pooling and classifier at the model's root follow ``head``.
    """
    unknown = int8_layers - conv_layers - {HEAD}
    if unknown:
        raise PolicyError(
            f"int8 layers {sorted(unknown)} are not conv layers of the model; "
            f"use module paths such as {sorted(conv_layers)[:4]}"
        )
    nodes = [n for n in graph_model.graph.node if n.op_type not in ("Constant", "Identity")]
    conv_scopes = [node_scope(n) for n in nodes if n.op_type == "Conv"]
    if sorted(conv_scopes) != sorted(conv_layers):
        raise PolicyError(
            "cannot map ONNX conv nodes to model layers: the exporter produced scopes "
            f"{sorted(conv_scopes)[:6]} for layers {sorted(conv_layers)[:6]}; "
            "export with torch.onnx.export(dynamo=False) from torch 2.x, whose node names carry module scopes"
        )
    selected = []
    for node in nodes:
        scope = node_scope(node)
        owner = next((layer for layer in conv_layers if _within(scope, layer)), None)
        if owner is not None:
            quantize = owner in int8_layers
        elif scope.split(".", 1)[0] in _HEAD_FOLLOWERS:
            quantize = HEAD in int8_layers
        else:
            inside = {layer for layer in conv_layers if _within(layer, scope)}
            quantize = bool(inside) and inside <= int8_layers
        if quantize:
            selected.append(node.name)
    return selected


class _ArrayReader:
    """CalibrationDataReader over an (N, C, H, W) array, in batches of the export's batch size."""

    def __init__(self, data: np.ndarray, batch: int) -> None:
        self._batches: Iterator[np.ndarray] = iter(
            [data[i : i + batch] for i in range(0, len(data) - batch + 1, batch)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"input": batch}


def _calibration_data(
    calibration: np.ndarray | None, input_shape: tuple[int, int, int, int]
) -> np.ndarray:
    if calibration is None:
        rng = np.random.default_rng(0)
        shape = (CALIBRATION_SAMPLES * input_shape[0], *input_shape[1:])
        return rng.standard_normal(shape, dtype=np.float32)
    data = np.ascontiguousarray(calibration, dtype=np.float32)
    if data.ndim != 4 or data.shape[1:] != tuple(input_shape[1:]) or len(data) < input_shape[0]:
        raise PolicyError(
            f"calibration data has shape {data.shape}, expected (N, {', '.join(map(str, input_shape[1:]))}) "
            f"with N >= {input_shape[0]}; pass samples shaped like the model input"
        )
    return data


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    # The quantizer logs advice through the root logger; it is noise for callers.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _quantize(
    fp32: onnx.ModelProto,
    *,
    nodes: list[str],
    input_shape: tuple[int, int, int, int],
    calibration: np.ndarray | None,
) -> bytes:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    data = _calibration_data(calibration, input_shape)
    with tempfile.TemporaryDirectory(prefix="autoc-quant-") as tmp, _quiet_quantizer():
        out = Path(tmp) / "int8.onnx"
        quantize_static(
            fp32,
            out,
            _ArrayReader(data, input_shape[0]),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=nodes,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
        return out.read_bytes()
