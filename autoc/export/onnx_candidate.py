"""A candidate's compressed model as ONNX, and how it compares with what the search estimated.

Pruned layers are physically smaller (the model is built from the pruned plan); layers the
policy runs int8 become QDQ int8 by ONNX Runtime static quantisation, calibrated on
training images; all others stay fp32.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from autoc.arch.builder import AutocNet, ConvBNAct
from autoc.candidate import Candidate
from autoc.data.preprocessing import Preprocessing
from autoc.compress.quant import quantize_weight
from autoc.onnx.export import export_onnx, observe_on_calibration, policy_int8_layers
from autoc.latency.check import LatencyCheck
from autoc.latency.measure import make_session
from autoc.onnx.int8 import INT8
from autoc.onnx.parity import accuracy_drift, latency_drift

CALIBRATION_SAMPLES = 64
ACCURACY_BATCH = 64  # images per ONNX Runtime run when scoring (the input's batch dimension is dynamic)


def input_shape(candidate: Candidate) -> tuple[int, int, int, int]:
    """The candidate's input shape for one image: (1, channels, size, size); the exported batch is dynamic."""
    arch = candidate.arch
    return (1, arch.in_channels, arch.input_size, arch.input_size)


def candidate_onnx(
    model: AutocNet, candidate: Candidate, *, calibration: np.ndarray | None, int8_weights: str | None = None,
    preprocessing: Preprocessing | None = None,
) -> bytes:
    """ONNX bytes of ``model`` (built from ``candidate``): fp32, QDQ int8 where the policy says,
    with ``preprocessing`` in its metadata (``Preprocessing.metadata``) when given.

    Weights of layers with fewer than 8 weight bits are first snapped to their bit width's
    grid (as the fake quantiser saw them), so the int8 graph holds the values the accuracy
    estimate was measured with, stored in 8 bits (``int8_weights``: how, see autoc.onnx.int8).
    """
    spec = candidate.netspec()
    # before the copy that snaps weights: the caller's model then scores with the ranges exported
    observe_on_calibration(model, calibration=calibration, input_shape=input_shape(candidate))
    return export_onnx(
        _snap_low_bit_weights(model, candidate),
        input_shape=input_shape(candidate),
        int8_layers=policy_int8_layers(spec, candidate.policy),
        calibration=calibration,
        int8_weights=int8_weights,
        metadata=preprocessing.metadata() if preprocessing is not None else None,
        dynamic_batch=True,
    )


@torch.no_grad()
def _snap_low_bit_weights(model: AutocNet, candidate: Candidate) -> AutocNet:
    low = {
        name
        for name in candidate.full_netspec().layer_names()
        if candidate.policy.get(name).precision == "int8" and candidate.policy.get(name).weight_bits < 8
    }
    if not low:
        return model
    snapped = copy.deepcopy(model)
    for name, module in snapped.named_modules():
        if isinstance(module, ConvBNAct) and name in low:
            module.conv.weight.copy_(quantize_weight(module.conv.weight, bits=candidate.policy.get(name).weight_bits))
    return snapped


def calibration_images(train_x: torch.Tensor, *, samples: int = CALIBRATION_SAMPLES, seed: int = 0) -> np.ndarray:
    """A seeded random subset of training images for the int8 calibration."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(train_x.shape[0], generator=generator)[: min(samples, train_x.shape[0])]
    return train_x[index].numpy().astype(np.float32)


def onnx_accuracy(model_bytes: bytes, images: torch.Tensor, labels: torch.Tensor, *,
                  batch: int = ACCURACY_BATCH) -> float:
    """Top-1 accuracy of an ONNX model, run ``batch`` images at a time."""
    session = make_session(model_bytes, threads=1)
    name = session.get_inputs()[0].name
    x = images.numpy().astype(np.float32)
    logits = [session.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    predictions = np.concatenate(logits).argmax(1) if logits else np.zeros(0, dtype=np.int64)
    return float(np.mean(predictions == labels.numpy()))


@dataclass(frozen=True)
class OnnxCheck:
    """The exported model against the search's estimates."""

    device: str
    predicted_ms: float  # for ``device``; comparable with ``measured`` only when it is the host
    measured: LatencyCheck  # on this host, 1 thread
    estimate_accuracy: float  # fake-quant accuracy the search stored
    fake_quant_accuracy: float | None  # the rebuilt model on the reloaded validation split
    onnx_accuracy: float | None
    val_samples: int
    int8_weights: str = INT8  # how the export stores int8 weights (autoc.onnx.int8)

    @property
    def latency_comparable(self) -> bool:
        """Whether the prediction is for this machine (a host profile), so the two can be compared."""
        return self.device == "host"

    @property
    def latency_error(self) -> float:
        """measured / predicted - 1 (e.g. +0.05 = 5% slower than predicted)."""
        return self.measured.figure_ms / self.predicted_ms - 1.0

    @property
    def accuracy_gap_points(self) -> float | None:
        """ONNX minus fake-quant accuracy, in percentage points."""
        if self.onnx_accuracy is None or self.fake_quant_accuracy is None:
            return None
        return 100.0 * (self.onnx_accuracy - self.fake_quant_accuracy)

    def drift(self) -> tuple[str, ...]:
        """One line per way the export is not the model the search scored (empty: it is)."""
        problems = []
        if self.onnx_accuracy is not None and self.fake_quant_accuracy is not None:
            problems.append(accuracy_drift(exported=self.onnx_accuracy, scored=self.fake_quant_accuracy,
                                           what="the exported ONNX", detail=f"int8 weights stored as {self.int8_weights}"))
        if self.latency_comparable:
            problems.append(latency_drift(measured_ms=self.measured.figure_ms, predicted_ms=self.predicted_ms,
                                          what="the exported ONNX", spread=self.measured.session_spread,
                                          noisy=self.measured.noisy))
        return tuple(p for p in problems if p is not None)


def format_check(check: OnnxCheck) -> str:
    """A small table: predicted vs measured latency, fake-quant vs exported accuracy."""
    host = check.latency_comparable
    measured = check.measured
    lines = [
        f"{'figure':<34} {'search estimate':>16} {'exported ONNX':>14} {'difference':>11}",
        f"{'latency, ms (p10, 1 thread)':<34} {check.predicted_ms:>16.3f} {measured.figure_ms:>14.3f} "
        + (f"{100 * check.latency_error:>+10.1f}%" if host else f"{'n/a':>11}"),
    ]
    if check.fake_quant_accuracy is not None and check.onnx_accuracy is not None:
        lines.append(
            f"{'accuracy, validation split':<34} {check.fake_quant_accuracy:>16.4f} {check.onnx_accuracy:>14.4f} "
            f"{check.accuracy_gap_points:>+8.2f} pt"
        )
    notes = [
        f"measured p10-p90 {measured.p10_ms:.3f}-{measured.p90_ms:.3f} ms over {measured.repeats} runs in "
        f"{len(measured.sessions)} sessions, which differ by {100 * measured.session_spread:.1f}%"
        + (" -- NOISY" if measured.noisy else ""),
        f"stored search estimate of accuracy {check.estimate_accuracy:.4f}"
        + (f", validation split {check.val_samples} images" if check.val_samples else ""),
        f"int8 weights stored as {check.int8_weights} (autoc.onnx.int8)",
    ]
    if not host:
        notes.append(f"prediction is for device {check.device!r}; the measurement is this host's")
    if check.onnx_accuracy is None:
        notes.append("accuracy not compared: the study does not record how its data was loaded")
    return "\n".join(lines + [f"  ({note})" for note in notes])
