"""`autoc export --format executorch` of an `autoc compress` study: the chosen trial's fine-tuned
compressed model as an ExecuTorch program (``.pte``, XNNPACK delegate), checked as a search's is.

The program is built by the search export's path (autoc.latency.executorch: pt2e
with the XNNPACK quantizer configured per module, then lowered to XNNPACK): pruned layers are
physically smaller (the model is rebuilt from the policy), the layers the policy quantises (and
only those) run int8 with per-channel symmetric weights on the policy's bit grid and int8
activations calibrated on the training images `autoc compress` calibrates its ONNX export on;
everything else stays fp32; batch 1. The program is scored on the study's validation split in the
ExecuTorch runtime and timed on this host; a compress study's latency prediction comes from its
layer table, measured in ONNX Runtime on this host, so that latency is shown beside it, not
checked (as for a search whose profile is not this host's ExecuTorch one).
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from autoc.export.executorch import ExecutorchCheck, executorch_accuracy, executorch_api, measure_executorch
from autoc.export.exporter import device_runtime, runtimes_differ_note
from autoc.latency.executorch import lower_program, quantize_module
from autoc.modelspace.compress import quantized_layers
from autoc.modelspace.driver import CALIBRATION_IMAGES, Chosen
from autoc.modelspace.export import plain_layers
from autoc.modelspace.stored import StoredCompress

# The runtime a compress study's layer table is measured in on this host (autoc.modelspace.latency).
HOST_RUNTIME = "onnxruntime"


def study_runtime(study: StoredCompress) -> str | None:
    """The runtime the study's latency prediction was measured in: ONNX Runtime on this host (device
    ``host``), else its device profile's (None: unknown)."""
    device = study.options.device
    return HOST_RUNTIME if device == "host" else device_runtime(device, runs_dir=study.options.runs_dir)


def int8_layer_bits(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Layer (module path) -> (weight bits, activation bits) of every layer ``model`` (made by
    autoc.modelspace.compress) fake-quantises: the policy's int8 layers."""
    return {name: (quant.weight_bits, quant.act_bits) for name, quant in sorted(quantized_layers(model).items())}


def quantize_compressed(model: nn.Module, *, input_shape: tuple[int, int, int, int], calibration: torch.Tensor,
                        api: SimpleNamespace | None = None) -> torch.fx.GraphModule:
    """A compressed model exported with torch.export and quantised by pt2e exactly on its fake-quantised
    layers (calibrated on ``calibration``, N images, one at a time); a GraphModule of q/dq and float
    ops. PolicyError, naming them, when the quantizer cannot run some of those layers int8."""
    bits = int8_layer_bits(model)  # before they turn plain
    with plain_layers(model):  # the quantizer quantises those layers itself
        return quantize_module(model, (torch.zeros(input_shape),), bits=bits,
                               images=calibration.contiguous(), api=api or executorch_api())


def compressed_program(model: nn.Module, *, input_shape: tuple[int, int, int, int], calibration: torch.Tensor) -> bytes:
    """The ``.pte`` bytes of a compressed model (one input of ``input_shape``): int8 as
    :func:`quantize_compressed` quantises it, fp32 elsewhere, lowered to XNNPACK."""
    api = executorch_api()
    graph = quantize_compressed(model, input_shape=input_shape, calibration=calibration, api=api)
    return lower_program(graph, (torch.zeros(input_shape),), api=api)


def export_executorch(study: StoredCompress, chosen: Chosen, model: nn.Module, *,
                      check: bool) -> tuple[bytes, ExecutorchCheck | None, str | None]:
    """The chosen trial's program, its check (None when not asked) and the note that the runtimes differ."""
    executorch_api()  # missing: one line naming the install, before any work
    data = study.data()
    shape = study.input_shape()
    program = compressed_program(model, input_shape=shape, calibration=data.train_x[:CALIBRATION_IMAGES].float())
    runtime = study_runtime(study)
    note = runtimes_differ_note(device=study.options.device, runtime=runtime, format="executorch")
    if not check:
        return program, None, note
    from autoc.latency.profile import host_device
    from autoc.training.loop import accuracy

    return program, ExecutorchCheck(
        device=study.options.device,
        predicted_ms=chosen.predicted_ms,
        measured=measure_executorch(program, shape),
        estimate_accuracy=chosen.accuracy,
        fake_quant_accuracy=accuracy(model, data.val_x, data.val_y),
        executorch_accuracy=executorch_accuracy(program, data.val_x, data.val_y),
        val_samples=int(data.val_x.shape[0]),
        int8_layers=tuple(int8_layer_bits(model)),
        profile_runtime=runtime,
        latency_comparable=study.options.device == host_device("executorch") and runtime == "executorch",
    ), note
