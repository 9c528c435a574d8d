"""A candidate's ONNX: low-bit weights keep their grid inside the int8 graph."""
import numpy as np
import onnx
import torch
from onnx import numpy_helper

from autoc.arch.builder import build_model
from autoc.compress.quant import apply_quantization
from autoc.export.onnx_candidate import calibration_images, candidate_onnx, onnx_accuracy
from autoc.onnx.export import node_scope
from helpers import tiny_candidate


def int8_weights(model_bytes: bytes) -> dict[str, np.ndarray]:
    """Layer -> the int8 weight tensor its conv dequantizes."""
    graph = onnx.load_from_string(model_bytes).graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    out = {}
    for node in graph.node:
        dq = producers.get(node.input[1]) if node.op_type == "Conv" else None
        if dq is not None and dq.op_type == "DequantizeLinear":
            out[node_scope(node)] = inits[dq.input[0]]
    return out


def levels_per_channel(weights: np.ndarray) -> int:
    return max(len(np.unique(channel)) for channel in weights.reshape(weights.shape[0], -1))


def test_4_bit_layers_keep_at_most_15_levels_per_channel_in_int8():
    torch.manual_seed(0)
    for bits, most in ((4, 15), (8, 255)):
        candidate = tiny_candidate(keep=1.0, precision="int8", bits=bits)
        model = apply_quantization(build_model(candidate.netspec()), candidate.policy).eval()
        calibration = torch.randn(16, 3, 16, 16)
        model(calibration)
        weights = int8_weights(candidate_onnx(model, candidate, calibration=calibration.numpy()))
        assert set(weights) == set(candidate.netspec().layer_names())
        widest = max(levels_per_channel(w) for name, w in weights.items() if not name.endswith(".dw"))
        assert widest <= most
        if bits == 8:
            assert widest > 15  # without snapping the int8 grid is used in full
        assert model.stem.quant is not None  # the caller's model is not modified


def test_calibration_images_and_onnx_accuracy():
    images = torch.arange(20, dtype=torch.float32).view(20, 1, 1, 1).expand(20, 3, 16, 16).contiguous()
    chosen = calibration_images(images, samples=8, seed=1)
    assert chosen.shape == (8, 3, 16, 16) and len({float(c[0, 0, 0]) for c in chosen}) == 8
    candidate = tiny_candidate(keep=1.0, precision="fp32")
    model = build_model(candidate.netspec()).eval()
    x = torch.randn(12, 3, 16, 16)
    with torch.no_grad():
        labels = model(x).argmax(1)
    onnx_bytes = candidate_onnx(model, candidate, calibration=None)
    assert onnx_accuracy(onnx_bytes, x, labels) == 1.0
    assert onnx_accuracy(onnx_bytes, x, (labels + 1) % 10) == 0.0
