"""ExecuTorch programs (``.pte``, XNNPACK delegate) of autoc modules, and their timing in
``executorch.runtime`` on this host: what ``autoc export --format executorch`` writes and what
``autoc calibrate --device host --runtime executorch`` measures (both build programs here).

Layers named int8 are quantised by PyTorch 2 export quantisation (pt2e) with the XNNPACK
quantizer configured per layer (module name): per-channel symmetric weights on the given
weight-bit grid (held in int8), per-tensor int8 activations. Everything else stays fp32.
ExecuTorch is optional: :func:`executorch_api` imports it, or says in one line how to install it.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import warnings
from types import SimpleNamespace
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from autoc.errors import MissingToolError, PolicyError, first_line
from autoc.latency.measure import Measurement, summarise, time_runs

EXECUTORCH_VERSION = "1.5.1"
INSTALL = f"pip install executorch=={EXECUTORCH_VERSION} (or pip install -e '.[dev]')"
RANDOM_CALIBRATION = 8  # images of random data when no calibration images are given

# The import function, a module attribute so a test can make ExecuTorch look missing.
import_module = importlib.import_module


def executorch_api(*, needed_by: str = "--runtime executorch",
                   importer: Callable | None = None) -> SimpleNamespace:
    """The ExecuTorch 1.5 / torchao 0.18 entry points autoc uses; MissingToolError (one line naming
    ``needed_by`` and the install) when absent."""
    load = importer or import_module
    try:
        with quiet():
            quantizer = load("executorch.backends.xnnpack.quantizer.xnnpack_quantizer")
            pt2e = load("torchao.quantization.pt2e.quantize_pt2e")
            partitioner = load("executorch.backends.xnnpack.partition.xnnpack_partitioner")
            exir = load("executorch.exir")
            runtime = load("executorch.runtime")
    except ImportError as exc:
        raise MissingToolError(
            f"{needed_by} needs ExecuTorch, which cannot be imported ({first_line(exc)}); install it: {INSTALL}"
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


def executorch_version() -> str:
    """The installed ExecuTorch's version (MissingToolError when absent)."""
    executorch_api()
    try:
        return importlib.metadata.version("executorch")
    except importlib.metadata.PackageNotFoundError:  # a source checkout
        return getattr(import_module("executorch.version"), "__version__", "unknown")


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
def quiet() -> Iterator[None]:
    """torch / torchao / ExecuTorch notices about their own APIs kept off the user's terminal."""
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


def random_images(count: int, shape: Sequence[int]) -> torch.Tensor:
    """``count`` seeded random images of ``shape`` (C, H, W): calibration when no data is given."""
    return torch.randn(count, *shape, generator=torch.Generator().manual_seed(0))


def quantize_module(model: nn.Module, example: tuple[torch.Tensor], *, bits: Mapping[str, tuple[int, int]],
                    images: torch.Tensor, api: SimpleNamespace | None = None) -> torch.fx.GraphModule:
    """``model`` exported with torch.export and quantised int8 by pt2e exactly on the layers of
    ``bits`` (layer -> (weight bits, activation bits)), calibrated on ``images`` one at a time.

    PolicyError, naming the layers, when the quantizer leaves a layer of ``bits`` in fp32 (or runs
    another conv or linear layer int8)."""
    api = api or executorch_api()
    quantizer = _layer_quantizer(api)
    for name, (weight_bits, act_bits) in bits.items():
        quantizer.set_module_name(name, api.quantization_config(
            is_per_channel=True,
            weight_qmin=-(2 ** (weight_bits - 1) - 1), weight_qmax=2 ** (weight_bits - 1) - 1,
            act_qmin=-(2 ** (act_bits - 1)), act_qmax=2 ** (act_bits - 1) - 1,
        ))
    model.eval()
    with torch.no_grad(), quiet():
        graph = torch.export.export(model, example).module()
        if not bits:
            return graph
        prepared = api.prepare_pt2e(graph, quantizer)
        for i in range(images.shape[0]):  # the program's batch is 1
            prepared(images[i : i + 1])
        converted = api.convert_pt2e(prepared)
    quantized = int8_weight_layers(converted)
    missing, extra = sorted(set(bits) - quantized), sorted(quantized - set(bits))
    if missing:
        raise PolicyError(
            f"the XNNPACK quantizer left int8 layers {missing} in fp32 (no pattern of it fits them); "
            "export them with --format onnx, or run them fp32 in the policy"
        )
    if extra:
        raise PolicyError(f"the XNNPACK quantizer ran layers {extra} int8, which the policy runs fp32; export them "
                          "with --format onnx")
    return converted


def lower_program(module: nn.Module, example: tuple[torch.Tensor], *, api: SimpleNamespace | None = None) -> bytes:
    """The ``.pte`` bytes of ``module`` (quantised or not), lowered to XNNPACK."""
    api = api or executorch_api()
    with torch.no_grad(), quiet():
        exported = torch.export.export(module, example)
        edge = api.to_edge_transform_and_lower(exported, partitioner=[api.XnnpackPartitioner()])
        return bytes(edge.to_executorch().buffer)


def program_of(model: nn.Module, *, input_shape: tuple[int, ...], int8_layers: Mapping[str, tuple[int, int]] | Sequence[str],
               images: torch.Tensor | None = None) -> bytes:
    """``model`` as a ``.pte`` program taking one input of ``input_shape``: int8 on ``int8_layers``
    (names, 8-bit weights and activations, or name -> (weight bits, activation bits)), random calibration
    images unless given."""
    api = executorch_api()
    bits = dict(int8_layers) if isinstance(int8_layers, Mapping) else {name: (8, 8) for name in sorted(int8_layers)}
    example = (torch.zeros(*input_shape),)
    images = random_images(RANDOM_CALIBRATION, input_shape[1:]) if images is None else images
    return lower_program(quantize_module(model, example, bits=bits, images=images, api=api), example, api=api)


def _layer_quantizer(api: SimpleNamespace):
    """The XNNPACK quantizer, to be configured per module name. torch.export's get_attr nodes (weights,
    BatchNorm-folded weights) carry no module stack, and the quantizer's module-name filter checks the
    weight node of a conv too, so it would reject every conv: each is given its users' module first.
    Likewise the ReLU a conv or linear layer alone feeds (in a user's model, a sibling module or a
    functional call of its parent; pt2e has folded the BatchNorm between them into the conv) is given
    the layer's module: the runtime fuses it into the layer, the filter would reject the conv+ReLU
    pattern, and the quantizer annotates no conv that feeds a ReLU alone."""

    class LayerQuantizer(api.XNNPACKQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            """The XNNPACK annotation, once weight nodes and fused ops carry their layer's module."""
            _give_parameters_their_users_module(model)
            _give_fused_ops_their_layers_module(model)
            return super().annotate(model)

    return LayerQuantizer()


_FUSED_OPS = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default)


def _give_fused_ops_their_layers_module(model: torch.fx.GraphModule) -> None:
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in _WEIGHT_OPS or "nn_module_stack" not in node.meta:
            continue
        user = next(iter(node.users)) if len(node.users) == 1 else None
        if user is not None and user.op == "call_function" and user.target in _FUSED_OPS:
            user.meta["nn_module_stack"] = dict(node.meta["nn_module_stack"])


def _give_parameters_their_users_module(model: torch.fx.GraphModule) -> None:
    for node in model.graph.nodes:
        if node.op != "get_attr" or node.meta.get("nn_module_stack"):
            continue
        stacks = {tuple(user.meta.get("nn_module_stack", {}).items()) for user in node.users}
        if len(stacks) == 1:
            node.meta["nn_module_stack"] = dict(stacks.pop())


_WEIGHT_OPS = (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default, torch.ops.aten.linear.default)


def int8_weight_layers(graph: torch.fx.GraphModule) -> set[str]:
    """Layers (the innermost module of each conv or linear op) whose weight is dequantised int8 in ``graph``."""
    layers = set()
    for node in graph.graph.nodes:
        if node.op == "call_function" and node.target in _WEIGHT_OPS:
            weight = node.args[1]
            if isinstance(weight, torch.fx.Node) and "dequantize" in str(weight.target):
                stack = list(node.meta.get("nn_module_stack", {}).values())
                if stack:
                    layers.add(stack[-1][0].removeprefix("L['self']."))
    return layers


def load_method(program: bytes, *, threads: int | None = None):
    """The program's ``forward`` in the ExecuTorch runtime; ``threads``: size of its thread pool."""
    api = executorch_api()
    if threads is not None:
        set_threads(threads)
    with quiet():
        return api.Runtime.get().load_program(program).load_method("forward")


def set_threads(threads: int) -> None:
    """Size ExecuTorch's (process-wide) thread pool; before any method runs."""
    with quiet():
        portable = import_module("executorch.extension.pybindings.portable_lib")
    portable._unsafe_reset_threadpool(threads)


class _MethodRun:
    """One inference of a loaded method on a fixed input."""

    def __init__(self, method, x: torch.Tensor) -> None:
        self._method, self._inputs = method, [x]
        method.execute(self._inputs)  # loads lazily-initialised delegate state before timing

    def __call__(self) -> None:
        self._method.execute(self._inputs)


def measure_programs(programs: Sequence[bytes], *, input_shapes: Sequence[tuple[int, int, int, int]],
                     threads: int = 1, warmup: int, repeats: int, seed: int = 0) -> list[Measurement]:
    """One Measurement per ``.pte`` program, by the protocol of ``autoc.latency.measure`` (methods
    loaded in random order, all warmed up, timed interleaved in rounds, outliers dropped, p10)."""
    if len(programs) != len(input_shapes):
        raise ValueError(f"{len(programs)} programs but {len(input_shapes)} input shapes; give one shape per program")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    api = executorch_api()
    set_threads(threads)
    rng = np.random.default_rng(seed)
    runs: list[_MethodRun | None] = [None] * len(programs)
    with quiet():
        runtime = api.Runtime.get()
        for i in rng.permutation(len(programs)):
            method = runtime.load_program(programs[i]).load_method("forward")
            x = torch.from_numpy(rng.standard_normal(input_shapes[i], dtype=np.float32))
            runs[i] = _MethodRun(method, x)
    return [summarise(row) for row in time_runs(runs, warmup=warmup, repeats=repeats, rng=rng)]
