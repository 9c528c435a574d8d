"""Accuracy and latency of an exported model in the runtime that will run it, without autoc.

Run as a script in its own process (benchmarks.export.handover does): it imports numpy and the
runtime only (onnxruntime for .onnx, torch.jit for TorchScript), and says so in its output.

    python benchmarks/export/runtime_check.py --format onnx --model m.onnx --data val.npz [--latency]

``val.npz`` holds ``x`` (N, C, H, W float32, as the model's input expects) and ``y`` (N labels).
Prints one JSON object: accuracy, samples, and with --latency the ONNX model's time as autoc's
calibration times a network (two sessions run interleaved, 1 thread, all graph optimisations,
each summarised by the 10th percentile of its runs) with their spread.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

WARMUP = 50
REPEATS = 400
SESSIONS = 2


def onnx_session(path: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as deployed
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def batch_size(session) -> int | None:
    """The input's fixed batch size, or None when the dimension is symbolic (any batch)."""
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def onnx_predictions(path: str, x: np.ndarray) -> np.ndarray:
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    step = batch_size(session) or 64
    out = [session.run(None, {name: x[i : i + step]})[0] for i in range(0, len(x) - step + 1, step)]
    if len(x) % step:  # a fixed batch: the rest one by one would not fit; pad it instead
        rest = x[len(x) - len(x) % step :]
        padded = np.concatenate([rest, np.zeros((step - len(rest), *x.shape[1:]), x.dtype)]) if batch_size(session) else rest
        out.append(session.run(None, {name: padded})[0][: len(rest)])
    return np.concatenate(out).argmax(1)


def torchscript_predictions(path: str, x: np.ndarray) -> np.ndarray:
    import torch

    torch.set_num_threads(1)
    model = torch.jit.load(path).eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i : i + 64])).numpy() for i in range(0, len(x), 64)]).argmax(1)


def onnx_latency(path: str, shape: tuple[int, ...]) -> dict:
    sessions = [onnx_session(path) for _ in range(SESSIONS)]
    name = sessions[0].get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    for _ in range(WARMUP):
        for s in sessions:
            s.run(None, {name: x})
    times = np.empty((SESSIONS, REPEATS))
    order = np.random.default_rng(1)
    for r in range(REPEATS):
        for i in order.permutation(SESSIONS):
            start = time.perf_counter_ns()
            sessions[i].run(None, {name: x})
            times[i, r] = (time.perf_counter_ns() - start) / 1e6
    figures = [float(np.percentile(t, 10)) for t in times]
    return {
        "figure_ms": float(np.mean(figures)),
        "session_figures_ms": figures,
        "session_spread": (max(figures) - min(figures)) / float(np.mean(figures)),
        "p10_ms": float(np.percentile(times, 10)),
        "p90_ms": float(np.percentile(times, 90)),
        "runs": int(times.size),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=["onnx", "torchscript"], required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--latency", action="store_true")
    args = parser.parse_args()
    data = np.load(args.data)
    x, y = data["x"].astype(np.float32), data["y"]
    predict = onnx_predictions if args.format == "onnx" else torchscript_predictions
    result = {"accuracy": float((predict(args.model, x) == y).mean()), "samples": int(len(y))}
    if args.latency and args.format == "onnx":
        result["latency"] = onnx_latency(args.model, (1, *x.shape[1:]))
    result["imported_autoc"] = any(m == "autoc" or m.startswith("autoc.") for m in sys.modules)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
