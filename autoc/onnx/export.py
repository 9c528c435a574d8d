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
from typing import AbstractSet, Iterator, Mapping

import numpy as np
import onnx
from onnx import numpy_helper
import torch
from torch import nn

from autoc.compress.quant import ActivationQuant, FakeQuant, missing_ranges, observe_missing_ranges, without_fake_quant
from autoc.arch.netspec import HEAD, NetSpec
from autoc.arch.policy import CompressionPolicy
from autoc.errors import PolicyError
from autoc.onnx.int8 import UINT8, check_int8_weights, host_int8_weights, store_weights_as_uint8

CALIBRATION_SAMPLES = 8
CALIBRATION_BATCH = 32  # images per calibration run: the input's batch dimension is dynamic
BATCH_DIM = "batch"


def export_onnx(
    model: nn.Module,
    *,
    input_shape: tuple[int, int, int, int],
    int8_layers: AbstractSet[str] = frozenset(),
    calibration: np.ndarray | None = None,
    int8_weights: str | None = None,
    opset: int = 17,
    metadata: Mapping[str, str] | None = None,
    dynamic_batch: bool = False,
) -> bytes:
    """Export ``model`` (eval mode) with input ``input`` and output ``logits``, shaped ``input_shape``.

    ``dynamic_batch``: both get a symbolic batch dimension (``batch``) instead, for models handed
    over (latency lookup tables keep the fixed shapes their profiles were measured with).
    ``int8_layers`` get ONNX Runtime static QDQ quantisation (per-channel symmetric int8
    weights, uint8 activations), calibrated on ``calibration`` (N, C, H, W) or, when None, on
    random normal data; every other node stays fp32. ``int8_weights`` says how the weights are
    stored (:mod:`autoc.onnx.int8`; None: the scheme for this host).
    ``metadata`` goes into the model's ``metadata_props`` (e.g. the preprocessing).
    """
    scheme = check_int8_weights(int8_weights) if int8_weights is not None else host_int8_weights()
    observe_on_calibration(model, calibration=calibration, input_shape=input_shape)
    seen = fake_quantisers(model)
    fp32 = _export_fp32(model, input_shape=input_shape, opset=opset, dynamic_batch=dynamic_batch)
    nodes = quantizable_nodes(fp32, conv_layers=_conv_layer_names(model), int8_layers=set(int8_layers),
                              linear_layers=_linear_layer_names(model)) if int8_layers else []
    if not nodes:  # an empty list would make the quantizer take every node
        return _with_metadata(fp32, metadata).SerializeToString()
    _unshare_initializers(fp32)
    quantized = _quantize(fp32, nodes=nodes, input_shape=input_shape, calibration=calibration, int8_weights=scheme,
                          overrides=_as_scored(fp32, nodes=set(nodes), seen=seen, requantised=requantisers(model)))
    return _with_metadata(quantized, metadata).SerializeToString()


def _with_metadata(model: onnx.ModelProto, metadata: Mapping[str, str] | None) -> onnx.ModelProto:
    if metadata:
        onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **metadata})
    return model


def fake_quantisers(model: nn.Module) -> dict[str, FakeQuant]:
    """Layer -> its fake quantiser, for the layers whose quantiser observed an input range while the
    search trained them (a model built only to be timed has none)."""
    return {
        name: module.quant
        for name, module in model.named_modules()
        if isinstance(getattr(module, "quant", None), FakeQuant) and bool(module.quant.observed)
    }


def requantisers(model: nn.Module) -> dict[str, ActivationQuant]:
    """Module path -> the observed quantiser of its output where the fake-quantised model requantises
    it as ONNX Runtime does: a conv layer's ``quant.output``, a residual block's ``sum_quant``."""
    found = {}
    for name, module in model.named_modules():
        quant = getattr(module, "sum_quant", None)
        if quant is None and isinstance(getattr(module, "quant", None), FakeQuant):
            quant = module.quant.output
        if quant is not None and bool(quant.observed):
            found[name] = quant
    return found


def observe_on_calibration(model: nn.Module, *, calibration: np.ndarray | None,
                           input_shape: tuple[int, int, int, int]) -> None:
    """Quantisers the model's weights predate observe on the images the export calibrates on."""
    if missing_ranges(model):
        observe_missing_ranges(model, torch.from_numpy(_calibration_data(calibration, input_shape)))


def _range(quant: ActivationQuant) -> list[dict]:
    return [{"rmin": np.float32(quant.act_min), "rmax": np.float32(quant.act_max)}]


def _as_scored(
    graph_model: onnx.ModelProto, *, nodes: AbstractSet[str], seen: dict[str, FakeQuant],
    requantised: Mapping[str, ActivationQuant],
) -> dict[str, list[dict]]:
    """ONNX Runtime tensor overrides that make each quantised conv (or linear layer's Gemm) compute what the fake-quantised
    layer the search scored computed:

    - its input takes the range the fake quantiser observed rather than one calibrated anew (same
      formula: uint8, affine, the range widened to hold zero), so inputs round alike;
    - weights of fewer than 8 bits, already on their bit width's grid, get per-channel scales that
      divide that grid by an integer (a 4-bit step is 18 int8 steps), so int8 holds them exactly;
    - the outputs ONNX Runtime requantises that no conv input covers (a layer's last node, a
      residual Add) take the range of the quantiser that requantises them in the fake-quantised model.
    """
    initializers = {init.name: init for init in graph_model.graph.initializer}
    overrides: dict[str, list[dict]] = {}
    last_output: dict[str, str] = {}  # module path -> the tensor its last quantised node writes
    for node in graph_model.graph.node:
        if node.name in nodes:
            scope = node_scope(node)
            # the innermost owner: a block's last node is its Add, a layer's its conv or activation
            owner = max((name for name in requantised if _within(scope, name)), key=len, default=None)
            if owner is not None:
                last_output[owner] = node.output[0]
    for owner, tensor in last_output.items():
        overrides[tensor] = _range(requantised[owner])
    for node in graph_model.graph.node:
        quant = seen.get(node_scope(node))
        if node.op_type not in ("Conv", "Gemm") or node.name not in nodes or quant is None:
            continue
        overrides[node.input[0]] = _range(quant)
        weight = initializers.get(node.input[1])
        if quant.weight_bits < 8 and weight is not None:
            qmax = 2 ** (quant.weight_bits - 1) - 1
            steps = 127 // qmax  # int8 steps per low-bit step
            absmax = np.abs(numpy_helper.to_array(weight)).reshape(weight.dims[0], -1).max(axis=1)
            scales = np.where(absmax > 0, absmax / (qmax * steps), 1.0).astype(np.float32)
            overrides[weight.name] = [{"axis": 0, "scale": scale, "zero_point": np.int8(0)} for scale in scales]
    return overrides


def _unshare_initializers(model: onnx.ModelProto) -> None:
    """Give every node its own copy of each weight and bias it reads.

    The exporter deduplicates equal constants (e.g. the all-zero biases of untrained BN
    folds) behind Identity nodes. A bias shared by two convs cannot take both convs'
    int32 scales, so the quantizer leaves them as DQ -> fp32 Conv -> Q, which ORT runs
    several times slower than QLinearConv: the graph would measure the wrong thing.
    """
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    aliases = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.input[0] in initializers}
    graph_outputs = {o.name for o in graph.output}
    kept = [
        n
        for n in graph.node
        if not (n.op_type == "Identity" and n.output[0] in aliases and n.output[0] not in graph_outputs)
    ]
    del graph.node[:]
    graph.node.extend(kept)
    seen: set[str] = set()
    for node in graph.node:
        for i, name in enumerate(node.input):
            source = aliases.get(name, name)
            if source not in initializers:
                continue
            if source in seen or name != source:
                copy = onnx.TensorProto()
                copy.CopyFrom(initializers[source])
                copy.name = f"{source}__{node.name or 'node'}_{i}"
                graph.initializer.append(copy)
                node.input[i] = copy.name
            else:
                seen.add(source)


def policy_int8_layers(spec: NetSpec, policy: CompressionPolicy) -> frozenset[str]:
    """The layers of ``spec`` that ``policy`` runs int8; ``head`` also stands for the classifier."""
    layers = {name for name in spec.layer_names() if policy.get(name).precision == "int8"}
    if policy.get(HEAD).precision == "int8":
        layers.add(HEAD)
    return frozenset(layers)


def _export_fp32(model: nn.Module, *, input_shape: tuple[int, int, int, int], opset: int,
                 dynamic_batch: bool = False) -> onnx.ModelProto:
    was_training = model.training
    model.eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad(), without_fake_quant(model):
            # dynamo=False is the legacy exporter on purpose (faster, stable scoped names).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script. is deprecated.*", category=FutureWarning)
            torch.onnx.export(
                model,
                (torch.zeros(input_shape),),
                buffer,
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                # traced at input_shape, run at any batch (latency is measured at the shape it is given)
                dynamic_axes={"input": {0: BATCH_DIM}, "logits": {0: BATCH_DIM}} if dynamic_batch else None,
                opset_version=opset,
                do_constant_folding=True,  # folds BatchNorm into the conv weights
            )
    finally:
        model.train(was_training)
    return onnx.load_from_string(buffer.getvalue())


def node_scope(node: onnx.NodeProto) -> str:
    """Module path of the scope that emitted ``node`` ('' for the model's own forward).

    The exporter names a scope level by its attribute (``/features/expand/Conv``), except children
    of containers, which carry their container's name (``/layer2.0/downsample/downsample.0/Conv``):
    such a level replaces the level before it."""
    levels: list[str] = []
    for part in node.name.lstrip("/").split("/")[:-1]:
        if levels and part.startswith(levels[-1] + "."):
            levels[-1] = part
        else:
            levels.append(part)
    return ".".join(levels)


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


def _linear_layer_names(model: nn.Module) -> set[str]:
    """Module paths of the model's linear layers (each exports as one Gemm, or MatMul and Add)."""
    return {name for name, module in model.named_modules() if isinstance(module, nn.Linear)}


def _within(scope: str, prefix: str) -> bool:
    return scope == prefix or scope.startswith(prefix + ".")


def quantizable_nodes(
    graph_model: onnx.ModelProto, *, conv_layers: set[str], int8_layers: set[str],
    linear_layers: AbstractSet[str] = frozenset(),
) -> list[str]:
    """Names of the ONNX nodes that run int8 when ``int8_layers`` do.

    A layer (conv, or linear among ``linear_layers``) owns every node in its scope (conv or Gemm,
    activation). Glue nodes outside any layer (residual Add, channel shuffle) go int8 when all the
    layers of their enclosing module do. The pooling and classifier at the model's root stay fp32,
    as the fake-quantised model the search scores runs them (it quantises conv layers only; a
    user's model, ``autoc.modelspace``, also the linear layers its policy names).
    """
    unknown = int8_layers - conv_layers - set(linear_layers) - {HEAD}
    if unknown:
        raise PolicyError(
            f"int8 layers {sorted(unknown)} are not conv or linear layers of the model; "
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
    owned = {node_scope(n) for n in nodes if n.op_type in ("Gemm", "MatMul")}
    lost = sorted(name for name in int8_layers & set(linear_layers) if name not in owned)
    if lost:
        raise PolicyError(f"cannot map linear layer {lost[0]!r} to an ONNX Gemm or MatMul node (the exporter "
                          f"produced scopes {sorted(owned)[:6]}); export with torch.onnx.export(dynamo=False)")
    layers = set(conv_layers) | set(linear_layers)
    selected = []
    for node in nodes:
        scope = node_scope(node)
        owner = next((layer for layer in layers if _within(scope, layer)), None)
        if owner is not None:
            quantize = owner in int8_layers
        else:
            inside = {layer for layer in layers if _within(layer, scope)}
            quantize = bool(inside) and inside <= int8_layers
        if quantize:
            selected.append(node.name)
    return selected


def _has_dynamic_batch(model: onnx.ModelProto) -> bool:
    return model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == BATCH_DIM


class _ArrayReader:
    """CalibrationDataReader over an (N, C, H, W) array: in batches of the export's batch size, or,
    when the model's batch is dynamic, of CALIBRATION_BATCH (a last smaller one included; faster)."""

    def __init__(self, data: np.ndarray, batch: int, *, dynamic: bool = False) -> None:
        if dynamic:
            starts, batch = range(0, len(data), CALIBRATION_BATCH), CALIBRATION_BATCH
        else:
            starts = range(0, len(data) - batch + 1, batch)
        self._batches: Iterator[np.ndarray] = iter([data[i : i + batch] for i in starts])

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
    int8_weights: str,
    overrides: dict[str, list[dict]],
) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    data = _calibration_data(calibration, input_shape)
    with tempfile.TemporaryDirectory(prefix="autoc-quant-") as tmp, _quiet_quantizer():
        out = Path(tmp) / "int8.onnx"
        quantize_static(
            fp32,
            out,
            _ArrayReader(data, input_shape[0], dynamic=_has_dynamic_batch(fp32)),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=nodes,
            extra_options={
                "WeightSymmetric": True,
                "ActivationSymmetric": False,
                "TensorQuantOverrides": overrides,
            },
        )
        quantized = onnx.load(out)
    _drop_dangling_constants(quantized)
    if int8_weights == UINT8:
        store_weights_as_uint8(quantized)
    return quantized


def _drop_dangling_constants(model: onnx.ModelProto) -> None:
    # The quantizer folds Clip into the int8 range but leaves the Clip bounds (and unshared
    # originals) behind; ORT would warn about them on every load.
    graph = model.graph
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    dangling = [n for n in graph.node if n.op_type == "Constant" and not set(n.output) & used]
    for node in dangling:
        graph.node.remove(node)
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
