"""Pruning, sorting and inheritance through squeeze-excite blocks (hswish stages)."""
import torch

from autoc.arch.builder import SqueezeExcite, build_model
from autoc.arch.config import ArchConfig, BlockOp, StageConfig
from autoc.arch.netspec import build_netspec
from autoc.arch.policy import LayerPolicy
from autoc.compress.quant import apply_quantization
from autoc.compress.transfer import inherit_weights, prune_to, sorted_by_importance
from helpers import kill_channels_pruning_drops, se_arch, se_candidate, uniform_policy


def _randomise(model):
    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5, generator=gen)
            module.bias.data.uniform_(-0.2, 0.2, generator=gen)
            module.running_mean.uniform_(-0.1, 0.1, generator=gen)
            module.running_var.uniform_(0.5, 1.5, generator=gen)
        elif isinstance(module, SqueezeExcite):
            module.reduce.bias.data.normal_(0, 0.5, generator=gen)
            module.expand.bias.data.normal_(0, 0.5, generator=gen)


@torch.no_grad()
def test_pruning_dead_hidden_channels_keeps_the_function_through_se():
    cand = se_candidate(keep=0.5)
    full_spec, pruned_spec = cand.full_netspec(), cand.netspec()
    model = build_model(full_spec, seed=0).eval()
    _randomise(model)
    kill_channels_pruning_drops(model, full_spec, pruned_spec)
    pruned = prune_to(model, full_spec, pruned_spec).eval()
    se_full, se_pruned = model.get_submodule("stages.1.0.se"), pruned.get_submodule("stages.1.0.se")
    assert se_pruned.reduce.in_channels == se_pruned.expand.out_channels < se_full.reduce.in_channels
    assert se_pruned.reduce.out_channels == se_full.reduce.out_channels  # reduced width is not pruned
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(pruned(x), model(x), rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_sorting_by_importance_permutes_se_with_its_hidden_group():
    spec = se_candidate(keep=1.0).full_netspec()
    model = build_model(spec, seed=3).eval()
    _randomise(model)
    ordered = sorted_by_importance(model, spec).eval()
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(ordered(x), model(x), rtol=1e-4, atol=1e-5)
    assert not torch.equal(ordered.get_submodule("stages.1.0.se.expand").weight,
                           model.get_submodule("stages.1.0.se.expand").weight)


@torch.no_grad()
def test_se_inherits_first_hidden_and_first_reduced_channels():
    def arch(width, op):
        return ArchConfig(16, 3, 10, 16, 1, (StageConfig(width, 2, (op,), activation="hswish", se=True),), 64)

    source = build_model(build_netspec(arch(32, BlockOp(7, 6))), seed=0)
    target = inherit_weights(source, build_model(build_netspec(arch(24, BlockOp(3, 3))), seed=1))
    src, dst = source.get_submodule("stages.0.0.se"), target.get_submodule("stages.0.0.se")
    assert (src.reduce.in_channels, src.reduce.out_channels) == (96, 24)
    assert (dst.reduce.in_channels, dst.reduce.out_channels) == (48, 16)
    assert torch.equal(dst.reduce.weight, src.reduce.weight[:16, :48])
    assert torch.equal(dst.reduce.bias, src.reduce.bias[:16])
    assert torch.equal(dst.expand.weight, src.expand.weight[:48, :16])
    assert torch.equal(dst.expand.bias, src.expand.bias[:48])


def test_fake_quantisation_leaves_se_fp32():
    arch = se_arch()
    policy = uniform_policy(arch, LayerPolicy(precision="int8", weight_bits=8, act_bits=8))
    model = apply_quantization(build_model(build_netspec(arch), seed=0), policy)
    assert model.get_submodule("stages.1.0.dw").quant is not None
    se = model.get_submodule("stages.1.0.se")
    assert not hasattr(se, "quant") and all(not hasattr(m, "quant") for m in se.modules())
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
