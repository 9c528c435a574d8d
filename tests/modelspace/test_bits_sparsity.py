"""Int8 linear layers, weight bits below 8 and unstructured sparsity in a compressed user model: what the
fake-quantised model computes, what its ONNX export holds and runs, and what a compress search chooses."""
import contextlib
import io
import re

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import autoc
from autoc.arch.policy import LayerPolicy
from autoc.cli import main
from autoc.compress.quant import quantize_weight
from autoc.modelspace import ModelPolicy, compress, load_model
from autoc.modelspace.export import export_compressed
from autoc.modelspace.groups import analyse
from autoc.modelspace.latency import model_layers, policy_layers, policy_size_bytes
from autoc.onnx.export import node_scope


def int8(bits=8, sparsity=0.0):
    return LayerPolicy(precision="int8", weight_bits=bits, act_bits=8, sparsity=sparsity)


def _observed(model, *, size=32, batches=3):
    """``model`` with its quantisers' ranges observed as the search's fine-tune observes them, in eval mode."""
    model.train()
    with torch.no_grad():
        for seed in range(batches):
            model(torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(10 + seed)))
    return model.eval()


def _runtime_logits(program: bytes, x: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(program, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


def _weights_by_layer(program: bytes) -> dict[str, np.ndarray]:
    """Module path -> the weight its Conv or Gemm reads in the ONNX program: the stored integers behind a
    DequantizeLinear (less their zero point) for an int8 layer, the fp32 initializer otherwise."""
    graph = onnx.load_from_string(program).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    dequantised = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    out = {}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm"):
            source = node.input[1]
            if source in dequantised:
                dq = dequantised[source]
                zero = inits[dq.input[2]] if len(dq.input) > 2 else 0
                zero = zero.reshape(-1, *[1] * (inits[dq.input[0]].ndim - 1)) if np.ndim(zero) else zero
                out[node_scope(node)] = inits[dq.input[0]].astype(np.int32) - zero
            else:
                out[node_scope(node)] = inits[source]
    return out


@pytest.fixture(scope="module")
def mobilenet():
    """mobilenet_v3_small with random weights and its BatchNorm statistics those of random images (with
    the default ones its activations vanish to 1e-8 by the classifier)."""
    torch.manual_seed(0)
    model = load_model("torchvision:mobilenet_v3_small", num_classes=10)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(32, 3, 32, 32))
    return model.eval()


@pytest.mark.parametrize("bits", [8, 4])
def test_an_int8_linear_layer_computes_in_the_fake_quantised_model_what_onnx_runtime_computes(mobilenet, bits):
    # the classifier MLP's hidden layer (576 -> 1024), as a compress search offers it int8
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    small = _observed(compress(mobilenet, ModelPolicy.of(layers={"classifier.0": int8(bits)}), example_input=x[:1]))
    with torch.no_grad():
        fake = small(x).numpy()
        plain = mobilenet(x).numpy()
    program = export_compressed(small, calibration=x[:32].numpy())
    weights = _weights_by_layer(program)
    assert weights["classifier.0"].dtype == np.int32 and weights["classifier.3"].dtype == np.float32  # int8 stored
    got = _runtime_logits(program, x)
    error = np.linalg.norm(got - fake) / np.linalg.norm(fake)  # ~0.001: rounding flips of float noise
    assert error < 0.005 and error < 0.2 * np.linalg.norm(plain - fake) / np.linalg.norm(fake)  # int8 shows; both agree
    assert np.mean(got.argmax(1) == fake.argmax(1)) >= 63 / 64


def test_hidden_linear_layers_are_offered_int8_and_timed_as_int8_units_but_not_the_classifier(mobilenet):
    x = torch.zeros(1, 3, 32, 32)
    structure = analyse(mobilenet, x)
    assert "classifier.0" in structure.int8_layers and "classifier.3" not in structure.int8_layers
    policy = ModelPolicy.of(layers={"classifier.0": int8(4)})
    [unit] = [layer for layer in policy_layers(model_layers(mobilenet, x), structure, policy)
              if layer.name == "classifier.0"]
    assert unit.precision == "int8" and unit.key == "linear-c576-o1024-int8"
    program, shape = unit.program()
    ops = {node.op_type for node in onnx.load_from_string(program).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Gemm"} <= ops and shape == (1, 576)


def test_a_4_bit_layer_holds_at_most_16_weight_values_per_output_channel_in_the_model_and_its_onnx(mobilenet):
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    layers = {"classifier.0": int8(4), "features.9.block.3.0": int8(4), "features.10.block.0.0": int8(8)}
    small = _observed(compress(mobilenet, ModelPolicy.of(layers=layers), example_input=x[:1]))
    for name in ("classifier.0", "features.9.block.3.0"):
        module = small.get_submodule(name)
        fake = quantize_weight(module.weight, bits=module.quant.weight_bits).flatten(1)
        assert max(len(torch.unique(row)) for row in fake) <= 16
    program = export_compressed(small, calibration=x.numpy())
    weights = _weights_by_layer(program)
    for name in ("classifier.0", "features.9.block.3.0"):
        rows = weights[name].reshape(weights[name].shape[0], -1)
        assert max(len(np.unique(row)) for row in rows) <= 16, name
        assert np.all(rows % 18 == 0)  # a 4-bit step is 18 int8 steps: the grid held exactly
    eight = weights["features.10.block.0.0"].reshape(weights["features.10.block.0.0"].shape[0], -1)
    assert max(len(np.unique(row)) for row in eight) > 16  # 8 bits keep their 8-bit grid


def test_sparse_layers_stay_zero_through_the_search_fine_tune_in_the_state_dict_and_the_onnx_weights():
    from autoc.data.datasets import load_dataset
    from autoc.modelspace.estimate import estimate_policy
    from autoc.training.loop import TrainConfig

    torch.manual_seed(0)
    resnet = load_model("torchvision:resnet18", num_classes=10)
    data = load_dataset("digits", input_size=32, seed=0, max_train=64, max_val=16)
    policy = ModelPolicy.of(keep={"layer1.0.conv1": 0.5},
                            layers={"layer3.0.conv2": LayerPolicy(sparsity=0.75), "layer4.0.conv1": int8(4, 0.5)})
    # the distillation a compress trial runs, at a learning rate that moves every weight it may
    small = estimate_policy(resnet, policy, data, teacher_logits=None,
                            config=TrainConfig(steps=4, lr=0.1, seed=0)).model
    x = data.train_x[:8]
    state = small.state_dict()
    assert (state["layer3.0.conv2.weight"] == 0).float().mean() >= 0.75 - 1e-3
    assert (state["layer4.0.conv1.weight"] == 0).float().mean() >= 0.5 - 1e-3
    weights = _weights_by_layer(export_compressed(small, calibration=x.numpy()))
    assert weights["layer3.0.conv2"].dtype == np.float32 and (weights["layer3.0.conv2"] == 0).mean() >= 0.75 - 1e-3
    assert weights["layer4.0.conv1"].dtype == np.int32 and (weights["layer4.0.conv1"] == 0).mean() >= 0.5 - 1e-3


def test_a_models_size_counts_each_layers_weights_at_its_bits_and_sparsity():
    torch.manual_seed(0)
    resnet = load_model("torchvision:resnet18", num_classes=10)
    x = torch.zeros(1, 3, 32, 32)
    layers, structure = model_layers(resnet, x), analyse(resnet, x)
    assert "fc" not in structure.int8_layers and "layer4.1.conv2" in structure.int8_layers  # the classifier stays fp32

    def size(policy):
        return policy_size_bytes(policy_layers(layers, structure, policy), policy)

    original = size(ModelPolicy.of())
    params = sum(p.numel() for n, p in resnet.named_parameters() if "bn" not in n and "downsample.1" not in n)
    biases = sum(m.out_channels for m in resnet.modules() if isinstance(m, torch.nn.Conv2d))
    assert original == 4 * (params + biases)  # fp32 weights and a (folded BatchNorm) bias per conv output
    conv = 512 * 512 * 9  # layer4.1.conv2's weights
    assert original - size(ModelPolicy.of(layers={"layer4.1.conv2": int8(4)})) == conv * 28 // 8
    assert original - size(ModelPolicy.of(layers={"layer4.1.conv2": int8(8, 0.75)})) == (conv * 32 - conv // 4 * 8
                                                                                          - conv) // 8


# As tests/modelspace/test_driver.py runs it: a small user model on a slice of digits.
COMMON = ["--dataset", "digits", "--input-size", "16", "--max-train", "300", "--max-val", "100",
          "--pretrain-steps", "60", "--finetune-steps", "5", "--allow-drift"]


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and re.match(r"autoc( compress)?: error: ", lines[0]), captured.err
    return lines[0]


def test_a_compress_run_with_weight_bits_and_sparsity_chooses_a_policy_within_the_size_budget(tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["compress", "usernets:small_resnet", "--budget-ms", "1000", "--weight-bits", "8", "4",
            "--sparsity", "0", "0.5", "--runs-dir", str(runs), *COMMON]
    assert main([*args, "--budget-kb", "1", "--study", "tiny"]) == 2  # below the smallest model: says both sizes
    line = _error_line(capsys)
    smallest, original = map(float, re.search(r"\(([\d.]+) kB; the original is ([\d.]+) kB\)", line).groups())
    assert smallest < original and not (runs / "tiny").exists()  # refused before anything is stored
    budget = f"{(smallest + original) / 2:.1f}"  # the latency budget is met already: size-only compression
    assert main([*args, "--budget-kb", budget, "--trials", "4", "--study", "s"]) == 0
    out = capsys.readouterr().out
    assert f"{original:.1f} kB (size budget {float(budget):g} kB)" in out
    size = float(re.search(r"budget 1000 ms: trial \d+, .* ([\d.]+) kB; ", out).group(1))
    assert size <= float(budget)
    file = autoc.load_policy(runs / "s" / "best_policy.json")
    assert file.metrics["size_kb"] <= float(budget)
    quantised = [layer for _, layer in file.policy.layers.layers if layer.quantized]
    assert quantised and {layer.weight_bits for layer in quantised} <= {8, 4}
    assert {layer.sparsity for _, layer in file.policy.layers.layers} <= {0.0, 0.5}
    model = load_model("usernets:small_resnet", num_classes=10)
    model.load_state_dict(torch.load(runs / "s" / "pretrained.pt", weights_only=True))
    rebuilt = file.apply(model)
    rebuilt.load_state_dict(torch.load(runs / "s" / "compressed.pt", weights_only=True))
    for name, layer in file.policy.layers.layers:  # the file reproduces each layer's bits and sparsity
        module = rebuilt.get_submodule(name)
        assert (module.weight == 0).float().mean() >= layer.sparsity - 1e-3
        assert not layer.quantized or module.quant.weight_bits == layer.weight_bits
    assert main(["show", str(runs / "s")]) == 0 and capsys.readouterr().out == out


@pytest.mark.parametrize("flags, message", [
    (["--weight-bits", "8", "9"], "--weight-bits must be whole numbers of bits in 2..8, got [8, 9]"),
    (["--weight-bits", "1"], "takes a whole number >= 2"),
    (["--sparsity", "0", "1"], "--sparsity must lie in [0, 1), got [0.0, 1.0]"),
    (["--sparsity", "-0.5"], "takes a finite number >= 0"),
    (["--budget-kb", "0"], "takes a finite number > 0"),
])
def test_bits_sparsity_or_a_size_budget_out_of_range_is_one_line_exit_2_and_stores_nothing(
        tmp_path, capsys, flags, message):
    try:  # argparse's own refusals exit while parsing; the options' return 2
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["compress", "usernets:small_resnet", "--budget-ms", "1", *flags,
                         "--runs-dir", str(tmp_path / "runs"), *COMMON, "--study", "bad"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and message in _error_line(capsys)
    assert not (tmp_path / "runs").exists()
