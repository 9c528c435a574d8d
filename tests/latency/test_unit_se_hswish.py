"""Latency units of squeeze-excite blocks in hswish stages: keys, unit modules, exported graphs."""
import onnx
import torch
from torch import nn

from autoc.arch.builder import SqueezeExcite
from autoc.arch.config import BlockOp, StageConfig
from autoc.arch.policy import CompressionPolicy
from autoc.latency.blocks import build_unit_module, export_unit, network_units, unit_work
from latency_nets import int8_policy, small_net

FP32 = CompressionPolicy()


def _nets():
    plain = small_net(stages=(StageConfig(16, 2, (BlockOp(3, 3), BlockOp(3, 3))),))
    se = small_net(stages=(StageConfig(16, 2, (BlockOp(3, 3), BlockOp(3, 3)), activation="hswish", se=True),))
    return plain, se


def test_se_and_the_blocks_activation_are_in_the_unit_key():
    plain, se = _nets()
    plain_keys = [u.key for u in network_units(plain, FP32)]
    se_keys = [u.key for u in network_units(se, FP32)]
    assert se_keys[0] == plain_keys[0] and se_keys[-1] == plain_keys[-1]  # stem and head keep the net's relu6
    assert se_keys[1] == "ir-r16-c16-k1s1o48g1-k3s2o48gdw-k1s1o16g1lin-se16-res0-hswish-fp32"
    assert plain_keys[1] == "ir-r16-c16-k1s1o48g1-k3s2o48gdw-k1s1o16g1lin-res0-relu6-fp32"


def test_the_unit_model_of_an_se_block_contains_the_se_ops():
    _, se = _nets()
    unit = network_units(se, FP32)[1]
    module = build_unit_module(unit).eval()
    block = module.get_submodule("stages.0.0")
    assert isinstance(block.se, SqueezeExcite) and block.layer_order == ["expand", "dw", "se", "project"]
    assert isinstance(block.dw.act, nn.Hardswish)
    assert module(torch.zeros(unit.input_shape)).shape == (1, 16, 8, 8)
    for policy in (FP32, int8_policy(se)):
        unit = network_units(se, policy)[1]
        graph = onnx.load_from_string(export_unit(unit)).graph
        ops = [n.op_type for n in graph.node]
        assert {"HardSwish", "HardSigmoid", "Mul"} <= set(ops)
        assert sum(op == "Conv" for op in ops) == 5  # expand, dw, SE reduce + expand, project


def test_se_adds_work_to_the_unit():
    plain, se = _nets()
    (plain_macs, plain_elems), (se_macs, se_elems) = (unit_work(network_units(n, FP32)[1]) for n in (plain, se))
    assert se_macs > plain_macs and se_elems > plain_elems
