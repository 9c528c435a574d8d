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

import importlib
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from autoc.candidate import Candidate
from autoc.compress.quant import without_fake_quant
from autoc.export.onnx_candidate import input_shape
from autoc.latency import executorch as _et
from autoc.latency.executorch import RANDOM_CALIBRATION, load_method
from autoc.onnx.export import policy_int8_layers
from autoc.latency.check import LATENCY_REPEATS, LATENCY_WARMUP  # the ONNX export's: both runtimes time alike
from autoc.onnx.parity import accuracy_drift, latency_drift

LATENCY_THREADS = 1  # as the device profiles are measured

# The import function, a module attribute so a test can make ExecuTorch look missing.
import_module = importlib.import_module


def executorch_api() -> SimpleNamespace:
    """The ExecuTorch 1.5 / torchao 0.18 entry points the export uses; MissingToolError when absent."""
    return _et.executorch_api(needed_by="--format executorch", importer=import_module)


def int8_layer_bits(candidate: Candidate) -> dict[str, tuple[int, int]]:
    """Layer -> (weight bits, activation bits) of every layer the policy runs int8 (``head``: the head conv)."""
    layers = policy_int8_layers(candidate.netspec(), candidate.policy)
    return {name: (candidate.policy.get(name).weight_bits, candidate.policy.get(name).act_bits) for name in sorted(layers)}


def example_input(candidate: Candidate) -> tuple[torch.Tensor]:
    """The program's input for torch.export: one image of the candidate's shape."""
    return (torch.zeros(input_shape(candidate)),)


def quantize_for_xnnpack(model: nn.Module, candidate: Candidate, *, calibration: np.ndarray | None,
                         api: SimpleNamespace | None = None) -> torch.fx.GraphModule:
    """``model`` (built from ``candidate``, fake quantisers detached) exported with torch.export and
    quantised int8 by pt2e exactly on the policy's int8 layers; a GraphModule of q/dq and float ops.

    PolicyError, naming the layers, when the quantizer leaves a layer the policy runs int8 in fp32.
    (Policies hold 2-8 weight bits and 8 activation bits on int8 layers, which its configs express.)"""
    with without_fake_quant(model):
        return _et.quantize_module(model, example_input(candidate), bits=int8_layer_bits(candidate),
                                   images=_calibration_tensor(calibration, candidate), api=api or executorch_api())


def executorch_program(model: nn.Module, candidate: Candidate, *, calibration: np.ndarray | None) -> bytes:
    """The ``.pte`` bytes of ``model`` (built from ``candidate``): int8 where the policy says, lowered to XNNPACK."""
    api = executorch_api()
    quantized = quantize_for_xnnpack(model, candidate, calibration=calibration, api=api)
    return _et.lower_program(quantized, example_input(candidate), api=api)


def _calibration_tensor(calibration: np.ndarray | None, candidate: Candidate) -> torch.Tensor:
    if calibration is not None:
        return torch.from_numpy(np.ascontiguousarray(calibration, dtype=np.float32))
    return _et.random_images(RANDOM_CALIBRATION, example_input(candidate)[0].shape[1:])


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
    """Repeated runs of one image after warm-up, in the ExecuTorch runtime on this host. ``figure_ms``:
    the profiles' figure (10th percentile after dropping outliers, autoc.latency.measure)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    threads: int
    figure_ms: float | None = None


def measure_executorch(program: bytes, shape: tuple[int, int, int, int], *, warmup: int = LATENCY_WARMUP,
                       repeats: int = LATENCY_REPEATS, threads: int = LATENCY_THREADS) -> ExecutorchLatency:
    """Latency of the program (one input of ``shape``) on this host: ``repeats`` timed runs after
    ``warmup`` untimed ones, by the protocol calibration uses (autoc.latency.executorch.measure_programs)."""
    [measured] = _et.measure_programs([program], input_shapes=[tuple(shape)], threads=threads,
                                      warmup=warmup, repeats=repeats)
    return ExecutorchLatency(median_ms=measured.median_ms, p10_ms=measured.p10_ms, p90_ms=measured.p90_ms,
                             repeats=repeats, threads=threads, figure_ms=measured.figure_ms)


@dataclass(frozen=True)
class ExecutorchCheck:
    """The ``.pte`` against the search's estimates. The latency prediction gates the export (±10%,
    autoc.onnx.parity) only when it comes from this host's ExecuTorch profile (``latency_comparable``);
    from another runtime's or device's profile it is shown beside the measurement."""

    device: str
    predicted_ms: float  # the profile of ``device``
    measured: ExecutorchLatency  # ExecuTorch on this host
    estimate_accuracy: float  # fake-quant accuracy the search stored
    fake_quant_accuracy: float | None  # the rebuilt model on the reloaded validation split
    executorch_accuracy: float | None
    val_samples: int
    int8_layers: tuple[str, ...]
    profile_runtime: str | None = None  # the runtime the profile of ``device`` was measured in, where known
    latency_comparable: bool = False  # the prediction is this host's, in ExecuTorch

    @property
    def latency_error(self) -> float | None:
        """measured / predicted - 1, where the two are comparable (else None)."""
        if not self.latency_comparable or self.measured.figure_ms is None or self.predicted_ms <= 0:
            return None
        return self.measured.figure_ms / self.predicted_ms - 1.0

    @property
    def accuracy_gap_points(self) -> float | None:
        """ExecuTorch minus fake-quant accuracy, in percentage points."""
        if self.executorch_accuracy is None or self.fake_quant_accuracy is None:
            return None
        return 100.0 * (self.executorch_accuracy - self.fake_quant_accuracy)

    def drift(self) -> tuple[str, ...]:
        """One line per way the program departs from the model the search scored (empty: it does not):
        accuracy, and latency where the prediction is this host's ExecuTorch profile's."""
        problems = []
        if self.executorch_accuracy is not None and self.fake_quant_accuracy is not None:
            problems.append(accuracy_drift(exported=self.executorch_accuracy, scored=self.fake_quant_accuracy,
                                           what="the exported ExecuTorch program",
                                           detail="XNNPACK int8 on the policy's int8 layers"))
        if self.latency_error is not None:
            problems.append(latency_drift(measured_ms=self.measured.figure_ms, predicted_ms=self.predicted_ms,
                                          what="the exported ExecuTorch program"))
        return tuple(p for p in problems if p is not None)

