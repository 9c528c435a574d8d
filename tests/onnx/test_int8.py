import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from autoc.arch.builder import build_model
from autoc.arch.netspec import build_netspec
from autoc.errors import DeviceError
from autoc.onnx.export import export_onnx
from autoc.onnx.int8 import ENV_VAR, cpu_flags, host_int8_weights, scheme_for_cpu
from helpers import tiny_arch

SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="module")
def model_and_layers():
    spec = build_netspec(tiny_arch())
    torch.manual_seed(0)
    model = build_model(spec).eval()
    return model, frozenset(spec.layer_names())


def weights_read_by_dequantize(model_bytes: bytes) -> list[onnx.TensorProto]:
    graph = onnx.load_from_string(model_bytes).graph
    initializers = {i.name: i for i in graph.initializer}
    return [
        initializers[n.input[0]]
        for n in graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in initializers and len(n.input) == 3
        and initializers[n.input[0]].data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    ]


def session(model_bytes: bytes, level, optimized_path=None):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.log_severity_level = 3
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    ("machine", "flags", "scheme"),
    [
        ("x86_64", {"sse4_2", "avx2", "fma"}, "uint8"),  # AVX2 without VNNI: u8 x s8 pairs saturate in int16
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, "int8"),
        ("x86_64", {"avx2", "avx_vnni"}, "int8"),
        ("AMD64", {"avx2"}, "uint8"),
        ("aarch64", {"asimd", "asimddp"}, "int8"),
        ("arm64", set(), "int8"),
        ("x86_64", None, "int8"),  # flags unknown: ONNX Runtime's default
    ],
)
def test_the_scheme_follows_the_cpus_int8_instructions(machine, flags, scheme):
    assert scheme_for_cpu(machine=machine, flags=None if flags is None else frozenset(flags)) == scheme


def test_cpu_flags_are_read_from_the_first_cpu_or_none(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_flags(info) == frozenset({"fpu", "avx2", "avx512_vnni"})
    info.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    assert cpu_flags(info) == frozenset({"fp", "asimd", "asimddp"})
    info.write_text("processor\t: 0\n")
    assert cpu_flags(info) is None
    assert cpu_flags(tmp_path / "absent") is None


def test_the_environment_overrides_the_host_scheme_and_a_bad_value_names_the_choices(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "uint8")
    assert host_int8_weights() == "uint8"
    monkeypatch.setenv(ENV_VAR, "int8")
    assert host_int8_weights() == "int8"
    monkeypatch.setenv(ENV_VAR, "u8")
    with pytest.raises(DeviceError, match=r"AUTOC_INT8_WEIGHTS='u8' is not a scheme; set it to one of int8, uint8"):
        host_int8_weights()


def test_uint8_weights_hold_the_same_numbers_and_run_as_fused_integer_convs(model_and_layers, tmp_path):
    model, layers = model_and_layers
    calibration = np.random.default_rng(0).standard_normal((16, *SHAPE[1:]), dtype=np.float32)
    signed = export_onnx(model, input_shape=SHAPE, int8_layers=layers, calibration=calibration, int8_weights="int8")
    unsigned = export_onnx(model, input_shape=SHAPE, int8_layers=layers, calibration=calibration, int8_weights="uint8")

    s_weights, u_weights = weights_read_by_dequantize(signed), weights_read_by_dequantize(unsigned)
    assert len(s_weights) == len(u_weights) >= len(layers)
    assert {w.data_type for w in s_weights} == {onnx.TensorProto.INT8}
    assert {w.data_type for w in u_weights} == {onnx.TensorProto.UINT8}
    for s, u in zip(s_weights, u_weights):  # the same integers, shifted by the zero point 128
        np.testing.assert_array_equal(numpy_helper.to_array(s).astype(np.int16) + 128, numpy_helper.to_array(u))

    x = calibration[:4]
    basic = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # QDQ kept: dequantised floats compared exactly
    for i in range(len(x)):
        np.testing.assert_array_equal(
            session(signed, basic).run(None, {"input": x[i : i + 1]})[0],
            session(unsigned, basic).run(None, {"input": x[i : i + 1]})[0],
        )
    # With every optimisation (as measured and as deployed) both fuse into integer convs.
    optimized = tmp_path / "u8-opt.onnx"
    full = session(unsigned, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, optimized_path=optimized)
    ops = [n.op_type for n in onnx.load(optimized).graph.node]
    assert ops.count("QLinearConv") == len(layers)  # every int8 conv layer, none left as DQ -> fp32 Conv
    got = full.run(None, {"input": x[:1]})[0]
    want = session(signed, basic).run(None, {"input": x[:1]})[0]
    np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05 * np.abs(want).max())


def test_export_onnx_stores_weights_as_the_host_scheme_by_default(model_and_layers, monkeypatch):
    model, layers = model_and_layers
    monkeypatch.setenv(ENV_VAR, "uint8")
    weights = weights_read_by_dequantize(export_onnx(model, input_shape=SHAPE, int8_layers=layers))
    assert weights and {w.data_type for w in weights} == {onnx.TensorProto.UINT8}
    with pytest.raises(ValueError, match="int8 weight scheme 'int4' is unknown"):
        export_onnx(model, input_shape=SHAPE, int8_layers=layers, int8_weights="int4")


def test_quantised_inputs_take_the_ranges_the_fake_quantiser_observed_not_new_calibration(model_and_layers):
    from autoc.arch.policy import CompressionPolicy, LayerPolicy
    from autoc.compress.quant import apply_quantization
    from autoc.onnx.export import node_scope

    _, layers = model_and_layers
    spec = build_netspec(tiny_arch())
    torch.manual_seed(0)
    int8 = LayerPolicy(precision="int8", weight_bits=8, act_bits=8)
    model = apply_quantization(build_model(spec), CompressionPolicy.from_mapping({name: int8 for name in layers}))
    model.train()
    with torch.no_grad():  # the search's training observes each quantised input's range
        for _ in range(3):
            model(torch.randn(8, *SHAPE[1:]))
    model.eval()
    # Calibration data on another scale: ranges calibrated from it would differ.
    calibration = 5 * np.random.default_rng(0).standard_normal((16, *SHAPE[1:]), dtype=np.float32)
    graph = onnx.load_from_string(export_onnx(model, input_shape=SHAPE, int8_layers=layers, calibration=calibration)).graph
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    checked = 0
    for node in graph.node:
        if node.op_type != "Conv" or node_scope(node) not in layers:
            continue
        dq = producers[node.input[0]]  # DequantizeLinear of the conv's quantised input
        q = producers[dq.input[0]]
        fake = dict(model.named_modules())[node_scope(node)].quant
        lo, hi = min(float(fake.act_min), 0.0), max(float(fake.act_max), 0.0)
        assert float(initializers[q.input[1]]) == pytest.approx((hi - lo) / 255, rel=1e-6), node_scope(node)
        assert int(initializers[q.input[2]]) == round(-lo / ((hi - lo) / 255))
        checked += 1
    assert checked == len(layers)


def test_weights_of_fewer_bits_are_held_exactly_by_int8_steps_that_divide_their_grid(model_and_layers):
    from autoc.arch.policy import CompressionPolicy, LayerPolicy
    from autoc.compress.quant import apply_quantization, quantize_weight
    from autoc.onnx.export import node_scope

    _, layers = model_and_layers
    spec = build_netspec(tiny_arch())
    torch.manual_seed(0)
    bits = {"stages.1.0.expand": 4, "stages.1.0.dw": 6, "stages.1.0.project": 8}
    policy = {name: LayerPolicy(precision="int8", weight_bits=b, act_bits=8) for name, b in bits.items()}
    model = apply_quantization(build_model(spec), CompressionPolicy.from_mapping(policy))
    model.train()
    with torch.no_grad():
        model(torch.randn(8, *SHAPE[1:]))
        for name, b in bits.items():  # the weights on their grid, as the export's caller snaps them
            conv = dict(model.named_modules())[name].conv
            conv.weight.copy_(quantize_weight(conv.weight, bits=b))
    model.eval()
    graph = onnx.load_from_string(
        export_onnx(model, input_shape=SHAPE, int8_layers=frozenset(bits), int8_weights="int8")).graph
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type == "Conv" and node_scope(node) in bits:
            q = initializers[producers[node.input[1]].input[0]].astype(np.int32)  # the int8 weights
            qmax = 2 ** (bits[node_scope(node)] - 1) - 1
            steps = 127 // qmax
            assert np.all(q % steps == 0), node_scope(node)  # each low-bit level is a whole number of int8 steps
            assert np.abs(q).max() == qmax * steps


def test_a_bad_scheme_in_the_environment_is_one_line_from_the_cli_and_stores_nothing(tmp_path, monkeypatch, capsys):
    from autoc.cli import main

    monkeypatch.setenv(ENV_VAR, "u8")
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--budget-ms", "5", "--device", "host", "--space", "mbv2-cifar", "--trials", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "autoc: error: AUTOC_INT8_WEIGHTS='u8' is not a scheme; set it to one of int8, uint8 or unset it"
    assert "Traceback" not in "\n".join(err) and not (tmp_path / "runs").exists()
