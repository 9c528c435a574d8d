"""Wall-clock latency of ONNX models under ONNX Runtime on this host.

Protocol for a noisy machine: one session per model, warm-up runs, then many timed
single runs; when several models are measured they take turns (round-robin), so slow
drift (frequency scaling, a neighbour's job) hits all of them alike. Figures are the
median and the 10th/90th percentiles of the per-run times.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from autoc.errors import DeviceError


@dataclass(frozen=True)
class Measurement:
    """Per-run latency figures of one model, in ms, over ``repeats`` timed runs."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int


def make_session(model: bytes, *, threads: int = 1):
    """An ORT CPU session: ``threads`` intra-op threads, sequential, all graph optimisations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # load-time notices (layout transforms etc.) are noise here
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for bad graphs
        raise DeviceError(
            f"ONNX Runtime cannot load the model to measure ({exc}); "
            "export it with autoc.export.onnx_export.export_onnx"
        ) from None


def measure_onnx(
    model: bytes,
    *,
    input_shape: tuple[int, int, int, int],
    threads: int = 1,
    warmup: int,
    repeats: int,
) -> Measurement:
    """Median latency of one model (see :func:`measure_interleaved`)."""
    return measure_interleaved([model], input_shapes=[input_shape], threads=threads, warmup=warmup, repeats=repeats)[0]


def measure_interleaved(
    models: Sequence[bytes],
    *,
    input_shapes: Sequence[tuple[int, int, int, int]],
    threads: int = 1,
    warmup: int,
    repeats: int,
) -> list[Measurement]:
    """One Measurement per model, timing them round-robin so drift is shared."""
    if len(models) != len(input_shapes):
        raise ValueError(f"{len(models)} models but {len(input_shapes)} input shapes; give one shape per model")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    rng = np.random.default_rng(0)
    runs = [
        _BoundRun(make_session(model, threads=threads), rng.standard_normal(shape, dtype=np.float32))
        for model, shape in zip(models, input_shapes)
    ]
    for _ in range(warmup):
        for run in runs:
            run()
    times = np.empty((len(runs), repeats), dtype=np.int64)
    clock = time.perf_counter_ns
    for r in range(repeats):
        for i, run in enumerate(runs):
            start = clock()
            run()
            times[i, r] = clock() - start
    return [_summarise(row) for row in times]


class _BoundRun:
    """One run with input and output bound once, so no per-run allocation or copy is timed."""

    def __init__(self, session, x: np.ndarray) -> None:
        import onnxruntime as ort

        self._session = session
        self._binding = session.io_binding()
        name_in, name_out = session.get_inputs()[0].name, session.get_outputs()[0].name
        first = session.run([name_out], {name_in: x})[0]  # the real output shape, even for dynamic axes
        # Held here: the binding keeps raw pointers to these buffers.
        self._input = ort.OrtValue.ortvalue_from_numpy(x)
        self._output = ort.OrtValue.ortvalue_from_numpy(np.empty_like(first))
        self._binding.bind_ortvalue_input(name_in, self._input)
        self._binding.bind_ortvalue_output(name_out, self._output)

    def __call__(self) -> None:
        self._session.run_with_iobinding(self._binding)


def _summarise(times_ns: np.ndarray) -> Measurement:
    p10, median, p90 = np.percentile(times_ns, [10, 50, 90]) / 1e6
    return Measurement(median_ms=float(median), p10_ms=float(p10), p90_ms=float(p90), repeats=len(times_ns))
