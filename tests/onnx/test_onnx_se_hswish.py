"""ONNX export of a network with hswish stages and squeeze-excite blocks."""
import numpy as np
import onnx
import onnxruntime as ort
import torch

from autoc.arch.builder import SqueezeExcite, build_model
from autoc.arch.netspec import build_netspec
from autoc.onnx.export import export_onnx, node_scope
from helpers import se_arch

SHAPE = (1, 3, 16, 16)


def _model():
    spec = build_netspec(se_arch())
    model = build_model(spec, seed=0).eval()
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1, generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
        elif isinstance(module, SqueezeExcite):
            module.expand.bias.data.normal_(0, 1.0, generator=gen)
    torch.nn.init.normal_(model.classifier.weight, 0, 0.2, generator=gen)
    return spec, model


def _run(program: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(program, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])


def test_fp32_export_of_se_and_hswish_runs_in_onnxruntime_and_matches_torch():
    _, model = _model()
    program = export_onnx(model, input_shape=SHAPE)
    ops = {n.op_type for n in onnx.load_from_string(program).graph.node}
    assert {"HardSwish", "HardSigmoid", "Mul"} <= ops
    x = np.random.default_rng(0).standard_normal((8, *SHAPE[1:]), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run(program, x), expected, rtol=1e-4, atol=1e-4)


def test_int8_export_quantises_the_policy_layers_and_leaves_se_fp32():
    spec, model = _model()
    x = np.random.default_rng(1).standard_normal((16, *SHAPE[1:]), dtype=np.float32)
    fp32 = export_onnx(model, input_shape=SHAPE)
    int8 = export_onnx(model, input_shape=SHAPE, int8_layers=set(spec.layer_names()) | {"head"}, calibration=x)
    graph = onnx.load_from_string(int8).graph
    producers = {out: node for node in graph.node for out in node.output}
    quantized = {node_scope(n) for n in graph.node if n.op_type == "Conv"
                 and getattr(producers.get(n.input[1]), "op_type", None) == "DequantizeLinear"}
    assert quantized == set(spec.layer_names())
    assert not any(".se." in name for name in quantized)
    ref, got = _run(fp32, x), _run(int8, x)
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.2
