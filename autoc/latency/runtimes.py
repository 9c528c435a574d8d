"""The runtimes a latency profile can be measured in, behind one interface: how a module becomes
the runtime's model (ONNX bytes / ``.pte`` program) and how a batch of those models is timed.

Both follow the protocol of ``autoc.latency.measure`` (random load order, warm-up, interleaved
rounds, outliers dropped, 10th percentile), with the same warm-up, repeats and thread count
wherever calibration asks for them. ``onnxruntime`` is the default; ``executorch`` times
``.pte`` programs (XNNPACK, int8 layers by pt2e) in ``executorch.runtime``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, AbstractSet, Sequence

from autoc.latency.measure import Measurement, measure_interleaved

if TYPE_CHECKING:
    from torch import nn

ONNXRUNTIME = "onnxruntime"
EXECUTORCH = "executorch"
RUNTIMES = (ONNXRUNTIME, EXECUTORCH)


@dataclass(frozen=True)
class Runtime:
    """One measurement backend, by name."""

    name: str

    def check(self) -> None:
        """MissingToolError (one line) when the runtime cannot be imported; nothing else happens."""
        if self.name == EXECUTORCH:
            from autoc.latency.executorch import executorch_api

            executorch_api()

    def version(self) -> str:
        if self.name == EXECUTORCH:
            from autoc.latency.executorch import executorch_version

            return executorch_version()
        import onnxruntime

        return onnxruntime.__version__

    def export(self, module: "nn.Module", *, input_shape: tuple[int, int, int, int],
               int8_layers: AbstractSet[str] = frozenset()) -> bytes:
        """``module`` as this runtime's model: int8 on ``int8_layers`` (random calibration), one input."""
        if self.name == EXECUTORCH:
            from autoc.latency.executorch import program_of

            return program_of(module, input_shape=input_shape, int8_layers=sorted(int8_layers))
        from autoc.onnx.export import export_onnx

        return export_onnx(module, input_shape=input_shape, int8_layers=int8_layers)

    def measure(self, models: Sequence[bytes], *, input_shapes: Sequence[tuple[int, int, int, int]], threads: int = 1,
                warmup: int, repeats: int) -> list[Measurement]:
        """One Measurement per model, all timed interleaved."""
        if self.name == EXECUTORCH:
            from autoc.latency.executorch import measure_programs

            return measure_programs(models, input_shapes=input_shapes, threads=threads, warmup=warmup, repeats=repeats)
        return measure_interleaved(models, input_shapes=input_shapes, threads=threads, warmup=warmup, repeats=repeats)

    def describe(self, threads: int) -> str:
        """The runtime's part of a calibration protocol, in words."""
        if self.name == EXECUTORCH:
            return f"executorch {self.version()} (XNNPACK, .pte programs), {threads} thread(s)"
        return f"onnxruntime CPU, {threads} thread(s)"


def runtime(name: str | None = None) -> Runtime:
    """The backend called ``name`` (default onnxruntime); ValueError for another name."""
    name = name or ONNXRUNTIME
    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")
    return Runtime(name)


ORT = Runtime(ONNXRUNTIME)
