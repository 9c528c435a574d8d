"""Wall-clock latency of ONNX models under ONNX Runtime on this host.

Measurement protocol (built for a noisy machine whose speed drifts by tens of percent
over minutes and whose cores other jobs share):

1. One session per model, ``threads`` intra-op threads (1 by default), sequential
   execution, all graph optimisations; input and output bound once, so no per-run
   allocation or copy is timed.
2. Warm-up: every model runs ``warmup`` times before any run is timed.
3. Interleaving: the timed runs go in rounds; each round runs every model once, in a
   fresh random order. Slow drift and a neighbour's burst then hit all models alike,
   and no model always follows the same (cache-warming or cache-evicting) neighbour.
4. Many repetitions, outliers dropped: per model, runs above Q3 + 3 x IQR of its own
   times (a context switch, a page fault) are discarded before summarising.
5. The latency figure (``figure_ms``) is the 10th percentile of the kept runs, with the
   median, p10 and p90 recorded beside it. Interference on a shared CPU only ever adds
   time, and once more than half of the runs are hit (seen on this project's 2-core
   machine at load 9: medians 1.1-3x the 10th percentile, varying per model) the median
   measures the neighbours, not the model. A long run (a whole network, ~1 ms) is hit
   more often than a short one (a block, ~50 us), so the higher the percentile the more
   load inflates networks against their unit sums. The 10th percentile stays with the
   model's own time yet, unlike the minimum, does not reward one lucky run. Measured at
   load 4-5 (benchmarks.latency.diagnose, two dumps of 180 networks each measured
   twice): the two measurements of a network differ by a median 1.0-2.0 % at p10 against
   1.3-2.5 % at p20, and held-out predictions rank better (Kendall tau +0.01).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from autoc.errors import DeviceError

# Tukey's "far out" fence: only clear interruptions are dropped, never the slow tail of real runs.
OUTLIER_IQR = 3.0
FIGURE_PERCENTILE = 10


@dataclass(frozen=True)
class Measurement:
    """Per-run latency figures of one model, in ms, over ``repeats`` timed runs (``outliers`` dropped).

    ``figure_ms`` is the figure lookup tables and corrections use (see the module docstring).
    """

    figure_ms: float
    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    outliers: int = 0


def make_session(model: bytes, *, threads: int = 1, profile_prefix: str | None = None):
    """An ORT CPU session: ``threads`` intra-op threads, sequential, all graph optimisations;
    with ``profile_prefix``, ORT's per-node profiler on (benchmarks.latency.profile)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # load-time notices (layout transforms etc.) are noise here
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for bad graphs
        raise DeviceError(
            f"ONNX Runtime cannot load the model to measure ({exc}); "
            "export it with autoc.onnx.export.export_onnx"
        ) from None


def measure_onnx(
    model: bytes,
    *,
    input_shape: tuple[int, int, int, int],
    threads: int = 1,
    warmup: int,
    repeats: int,
) -> Measurement:
    """Latency figures of one model (see :func:`measure_interleaved`)."""
    return measure_interleaved([model], input_shapes=[input_shape], threads=threads, warmup=warmup, repeats=repeats)[0]


def measure_interleaved(
    models: Sequence[bytes], *, input_shapes: Sequence[tuple[int, int, int, int]], **options: int
) -> list[Measurement]:
    """One Measurement per model, following the module's protocol (options as :func:`measure_times`)."""
    return [summarise(row) for row in measure_times(models, input_shapes=input_shapes, **options)]


def measure_times(
    models: Sequence[bytes],
    *,
    input_shapes: Sequence[tuple[int, int, int, int]],
    threads: int = 1,
    warmup: int,
    repeats: int,
    seed: int = 0,
) -> np.ndarray:
    """Every timed run in ms: one row per model, one column per round."""
    if len(models) != len(input_shapes):
        raise ValueError(f"{len(models)} models but {len(input_shapes)} input shapes; give one shape per model")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    rng = np.random.default_rng(seed)
    # Sessions are created in a random order. Measured here, the same unit ran ~7% slower in
    # a session made among the first few hundred of a process than in a copy made after
    # them, timed in the same rounds (benchmarks.latency.diagnose --creation-order);
    # created in list order, the fitting networks' units (first in a calibration batch)
    # took that bias into the correction. Shuffled, it is noise spread over all models.
    runs: list[_BoundRun | None] = [None] * len(models)
    for i in rng.permutation(len(models)):
        session = make_session(models[i], threads=threads)
        runs[i] = _BoundRun(session, rng.standard_normal(input_shapes[i], dtype=np.float32))
    return time_runs(runs, warmup=warmup, repeats=repeats, rng=rng)


def time_runs(runs: Sequence, *, warmup: int, repeats: int, rng: np.random.Generator) -> np.ndarray:
    """Steps 2-3 of the protocol for any runtime: ``runs`` (callables, one inference each) all
    warmed up, then timed in rounds of a fresh random order; ms, one row per run, one column per round."""
    for _ in range(warmup):
        for run in runs:
            run()
    times = np.empty((len(runs), repeats), dtype=np.int64)
    clock = time.perf_counter_ns
    for r in range(repeats):
        for i in rng.permutation(len(runs)):
            run = runs[i]
            start = clock()
            run()
            times[i, r] = clock() - start
    return times / 1e6


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


def summarise(times_ms: np.ndarray) -> Measurement:
    """The figure (FIGURE_PERCENTILE), median, p10 and p90 of ``times_ms`` after dropping runs beyond the upper outlier fence."""
    times_ms = np.asarray(times_ms, dtype=np.float64)
    q1, q3 = np.percentile(times_ms, [25, 75])
    kept = times_ms[times_ms <= q3 + OUTLIER_IQR * (q3 - q1)]
    p10, figure, median, p90 = np.percentile(kept, [10, FIGURE_PERCENTILE, 50, 90])
    return Measurement(
        figure_ms=float(figure),
        median_ms=float(median),
        p10_ms=float(p10),
        p90_ms=float(p90),
        repeats=len(times_ms),
        outliers=len(times_ms) - len(kept),
    )
