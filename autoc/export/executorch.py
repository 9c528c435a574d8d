"""A candidate's compressed model as an ExecuTorch program (``.pte``, XNNPACK delegate), and how it
compares with what the search scored.

Pruned layers are physically smaller (the model is built from the pruned plan). The layers the
policy runs int8 are quantised by PyTorch 2 export quantisation (pt2e) with the XNNPACK quantizer
configured per layer (module name): per-channel symmetric weights on the policy's weight-bit grid
(held in int8), per-tensor int8 activations, calibrated on the training images the ONNX export
uses. Every other layer, the pooling and the classifier stay fp32. The program takes one image
(batch 1), as a phone app runs it.

ExecuTorch is optional: :func:`executorch_api` imports it, or says in one line how to install it.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import statistics
import time
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Iterator

import numpy as np
import torch
from torch import nn

from autoc.candidate import Candidate
from autoc.compress.quant import without_fake_quant
from autoc.errors import MissingToolError, PolicyError, first_line
from autoc.onnx.export import policy_int8_layers
from autoc.onnx.parity import accuracy_drift

EXECUTORCH_VERSION = "1.5.1"
INSTALL = f"pip install executorch=={EXECUTORCH_VERSION} (or pip install -e '.[dev]')"
LATENCY_WARMUP = 50
LATENCY_REPEATS = 400
LATENCY_THREADS = 1  # as the device profiles are measured
RANDOM_CALIBRATION = 8  # images of random data when the study does not say how it loaded its data

# The import function, a module attribute so a test can make ExecuTorch look missing.
import_module = importlib.import_module


def executorch_api() -> SimpleNamespace:
    """The ExecuTorch 1.5 / torchao 0.18 entry points the export uses; MissingToolError when absent."""
    try:
        with _quiet():
            quantizer = import_module("executorch.backends.xnnpack.quantizer.xnnpack_quantizer")
            pt2e = import_module("torchao.quantization.pt2e.quantize_pt2e")
            partitioner = import_module("executorch.backends.xnnpack.partition.xnnpack_partitioner")
            exir = import_module("executorch.exir")
            runtime = import_module("executorch.runtime")
    except ImportError as exc:
        raise MissingToolError(
            f"--format executorch needs ExecuTorch, which cannot be imported ({first_line(exc)}); "
            f"install it: {INSTALL}"
        ) from None
    return SimpleNamespace(
        XNNPACKQuantizer=quantizer.XNNPACKQuantizer,
        quantization_config=quantizer.get_symmetric_quantization_config,
        prepare_pt2e=pt2e.prepare_pt2e,
        convert_pt2e=pt2e.convert_pt2e,
        XnnpackPartitioner=partitioner.XnnpackPartitioner,
        to_edge_transform_and_lower=exir.to_edge_transform_and_lower,
        Runtime=runtime.Runtime,
    )


# What torch, torchao and ExecuTorch 1.5 say about their own APIs while autoc calls them (import-time
# deprecation notices, "experimental" notices): nothing the user can act on, so kept off their terminal.
_NOTICES = (
    (DeprecationWarning, r"(read_text|open_text|read_binary) is deprecated\. Use files\(\) instead"),
    (Warning, r"This API is experimental and subject to change without notice"),
)


class _DropTorchNotice(logging.Filter):
    """torchao registers an Enum with torch's pytree on import, which torch logs as deprecated."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "register_constant() on Enum subclasses is deprecated" not in record.getMessage()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    pytree_log = logging.getLogger("torch.utils._pytree")
    notice = _DropTorchNotice()
    pytree_log.addFilter(notice)
    try:
        with warnings.catch_warnings():
            for category, message in _NOTICES:
                warnings.filterwarnings("ignore", message=message, category=category)
            yield
    finally:
        pytree_log.removeFilter(notice)


def int8_layer_bits(candidate: Candidate) -> dict[str, tuple[int, int]]:
    """Layer -> (weight bits, activation bits) of every layer the policy runs int8 (``head``: the head conv)."""
    layers = policy_int8_layers(candidate.netspec(), candidate.policy)
    return {name: (candidate.policy.get(name).weight_bits, candidate.policy.get(name).act_bits) for name in sorted(layers)}


def example_input(candidate: Candidate) -> tuple[torch.Tensor]:
    """The program's input for torch.export: one image of the candidate's shape."""
    arch = candidate.arch
    return (torch.zeros(1, arch.in_channels, arch.input_size, arch.input_size),)


def quantize_for_xnnpack(model: nn.Module, candidate: Candidate, *, calibration: np.ndarray | None,
                         api: SimpleNamespace | None = None) -> torch.fx.GraphModule:
    """``model`` (built from ``candidate``, fake quantisers detached) exported with torch.export and
    quantised int8 by pt2e exactly on the policy's int8 layers; a GraphModule of q/dq and float ops.

    PolicyError, naming the layers, when the quantizer leaves a layer the policy runs int8 in fp32.
    (Policies hold 2-8 weight bits and 8 activation bits on int8 layers, which its configs express.)"""
    api = api or executorch_api()
    bits = int8_layer_bits(candidate)
    quantizer = _layer_quantizer(api)
    for name, (weight_bits, act_bits) in bits.items():
        quantizer.set_module_name(name, api.quantization_config(
            is_per_channel=True,
            weight_qmin=-(2 ** (weight_bits - 1) - 1), weight_qmax=2 ** (weight_bits - 1) - 1,
            act_qmin=-(2 ** (act_bits - 1)), act_qmax=2 ** (act_bits - 1) - 1,
        ))
    images = _calibration_tensor(calibration, candidate)
    model.eval()
    with torch.no_grad(), without_fake_quant(model), _quiet():
        graph = torch.export.export(model, example_input(candidate)).module()
        if not bits:
            return graph
        prepared = api.prepare_pt2e(graph, quantizer)
        for i in range(images.shape[0]):  # the program's batch is 1
            prepared(images[i : i + 1])
        converted = api.convert_pt2e(prepared)
    missing = sorted(set(bits) - int8_conv_layers(converted))
    if missing:
        raise PolicyError(
            f"the XNNPACK quantizer left int8 layers {missing} in fp32 (no pattern of it fits them); "
            "export them with --format onnx, or run them fp32 in the policy"
        )
    return converted


def _layer_quantizer(api: SimpleNamespace):
    """The XNNPACK quantizer, to be configured per module name. torch.export's get_attr nodes (weights,
    BatchNorm-folded weights) carry no module stack, and the quantizer's module-name filter checks the
    weight node of a conv too, so it would reject every conv: each is given its users' module first."""

    class LayerQuantizer(api.XNNPACKQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            """The XNNPACK annotation, once weight nodes carry their module."""
            _give_parameters_their_users_module(model)
            return super().annotate(model)

    return LayerQuantizer()


def _give_parameters_their_users_module(model: torch.fx.GraphModule) -> None:
    for node in model.graph.nodes:
        if node.op != "get_attr" or node.meta.get("nn_module_stack"):
            continue
        stacks = {tuple(user.meta.get("nn_module_stack", {}).items()) for user in node.users}
        if len(stacks) == 1:
            node.meta["nn_module_stack"] = dict(stacks.pop())


def int8_conv_layers(graph: torch.fx.GraphModule) -> set[str]:
    """Layers (the innermost module of each conv) whose conv weight is dequantised int8 in ``graph``."""
    layers = set()
    for node in graph.graph.nodes:
        if node.op == "call_function" and node.target in (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default):
            weight = node.args[1]
            if isinstance(weight, torch.fx.Node) and "dequantize" in str(weight.target):
                stack = list(node.meta.get("nn_module_stack", {}).values())
                if stack:
                    layers.add(stack[-1][0].removeprefix("L['self']."))
    return layers


def executorch_program(model: nn.Module, candidate: Candidate, *, calibration: np.ndarray | None) -> bytes:
    """The ``.pte`` bytes of ``model`` (built from ``candidate``): int8 where the policy says, lowered to XNNPACK."""
    api = executorch_api()
    quantized = quantize_for_xnnpack(model, candidate, calibration=calibration, api=api)
    with torch.no_grad(), _quiet():
        exported = torch.export.export(quantized, example_input(candidate))
        edge = api.to_edge_transform_and_lower(exported, partitioner=[api.XnnpackPartitioner()])
        return bytes(edge.to_executorch().buffer)


def _calibration_tensor(calibration: np.ndarray | None, candidate: Candidate) -> torch.Tensor:
    if calibration is not None:
        return torch.from_numpy(np.ascontiguousarray(calibration, dtype=np.float32))
    generator = torch.Generator().manual_seed(0)
    shape = example_input(candidate)[0].shape[1:]
    return torch.randn(RANDOM_CALIBRATION, *shape, generator=generator)


def load_method(program: bytes, *, threads: int | None = None):
    """The program's ``forward`` in the ExecuTorch runtime; ``threads``: size of its thread pool."""
    api = executorch_api()
    if threads is not None:
        with _quiet():
            portable = import_module("executorch.extension.pybindings.portable_lib")
        portable._unsafe_reset_threadpool(threads)  # before any method runs
    with _quiet():
        return api.Runtime.get().load_program(program).load_method("forward")


def executorch_logits(program: bytes, images: torch.Tensor) -> torch.Tensor:
    """The program's outputs for ``images`` (N, C, H, W), run one image at a time."""
    method = load_method(program)
    outputs = [method.execute([images[i : i + 1].contiguous()])[0] for i in range(images.shape[0])]
    return torch.cat(outputs) if outputs else torch.zeros(0)


def executorch_accuracy(program: bytes, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of the program in the ExecuTorch runtime."""
    logits = executorch_logits(program, images)
    return float((logits.argmax(1) == labels).float().mean()) if len(labels) else 0.0


@dataclass(frozen=True)
class ExecutorchLatency:
    """Repeated runs of one image after warm-up, in the ExecuTorch runtime on this host."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    threads: int


def measure_executorch(program: bytes, candidate: Candidate, *, warmup: int = LATENCY_WARMUP,
                       repeats: int = LATENCY_REPEATS, threads: int = LATENCY_THREADS) -> ExecutorchLatency:
    """Latency of the program on this host: ``repeats`` timed runs after ``warmup`` untimed ones."""
    method = load_method(program, threads=threads)
    x = torch.randn(example_input(candidate)[0].shape, generator=torch.Generator().manual_seed(0))
    for _ in range(warmup):
        method.execute([x])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        method.execute([x])
        times.append(1e3 * (time.perf_counter() - start))
    deciles = statistics.quantiles(times, n=10)
    return ExecutorchLatency(median_ms=statistics.median(times), p10_ms=deciles[0], p90_ms=deciles[-1],
                             repeats=repeats, threads=threads)


@dataclass(frozen=True)
class ExecutorchCheck:
    """The ``.pte`` against the search's estimates. The latency prediction comes from an ONNX Runtime
    profile, another runtime, so it is shown beside the measurement but never gates the export."""

    device: str
    predicted_ms: float  # ONNX Runtime profile of ``device``
    measured: ExecutorchLatency  # ExecuTorch on this host
    estimate_accuracy: float  # fake-quant accuracy the search stored
    fake_quant_accuracy: float | None  # the rebuilt model on the reloaded validation split
    executorch_accuracy: float | None
    val_samples: int
    int8_layers: tuple[str, ...]

    @property
    def accuracy_gap_points(self) -> float | None:
        """ExecuTorch minus fake-quant accuracy, in percentage points."""
        if self.executorch_accuracy is None or self.fake_quant_accuracy is None:
            return None
        return 100.0 * (self.executorch_accuracy - self.fake_quant_accuracy)

    def drift(self) -> tuple[str, ...]:
        """One line when the program's accuracy departs from the model the search scored (empty: it does not)."""
        if self.executorch_accuracy is None or self.fake_quant_accuracy is None:
            return ()
        problem = accuracy_drift(exported=self.executorch_accuracy, scored=self.fake_quant_accuracy,
                                 what="the exported ExecuTorch program", detail="XNNPACK int8 on the policy's int8 layers")
        return (problem,) if problem is not None else ()

