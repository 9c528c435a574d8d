import torch

from autoc.arch.builder import build_model
from autoc.arch.netspec import build_netspec, frozen_groups
from autoc.compress.transfer import inherit_weights, l1_channel_importance, prune_to, sorted_by_importance
from helpers import kill_channels_pruning_drops, tiny_candidate


def _randomise_bn(model):
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)


def test_keep_all_is_exact_copy():
    cand = tiny_candidate(keep=1.0, precision="fp32")
    full = build_model(cand.full_netspec()).eval()
    _randomise_bn(full)
    pruned = prune_to(full, cand.full_netspec(), cand.netspec()).eval()
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(pruned(x), full(x))


@torch.no_grad()
def test_pruning_removes_exactly_the_dead_channels_through_residuals():
    """Channels whose writers are all zero contribute nothing; pruning must remove exactly
    those in every tied layer, so the smaller network computes the same function."""
    cand = tiny_candidate(keep=0.5, precision="fp32")
    full_spec, pruned_spec = cand.full_netspec(), cand.netspec()
    model = build_model(full_spec).eval()
    _randomise_bn(model)
    kill_channels_pruning_drops(model, full_spec, pruned_spec)
    pruned = prune_to(model, full_spec, pruned_spec).eval()
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(pruned(x), model(x), rtol=1e-4, atol=1e-5)


def test_pruned_channels_are_the_highest_l1_summed_over_tied_writers():
    cand = tiny_candidate(keep=0.5, precision="fp32")
    full_spec = cand.full_netspec()
    model = build_model(full_spec)
    pruned = prune_to(model, full_spec, cand.netspec())
    # the stem group is written by the stem, stage 0's depthwise and its projection
    expected_scores = sum(
        model.get_submodule(name).conv.weight.abs().flatten(1).sum(1)
        for name in ("stem", "stages.0.0.dw", "stages.0.0.project")
    )
    scores = l1_channel_importance(model, full_spec)["stem"]
    torch.testing.assert_close(scores, expected_scores)
    kept = pruned.get_submodule("stem").conv.weight.shape[0]
    top = torch.topk(scores, kept).indices.sort().values
    assert torch.equal(pruned.get_submodule("stem").conv.weight, model.get_submodule("stem").conv.weight[top])
    assert torch.equal(pruned.get_submodule("stages.0.0.dw").conv.weight, model.get_submodule("stages.0.0.dw").conv.weight[top])


def test_inheritance_copies_first_channels_and_centre_kernel():
    from autoc.arch.config import ArchConfig, BlockOp, StageConfig

    big = ArchConfig(16, 3, 10, 16, 1, (StageConfig(32, 2, (BlockOp(7, 6),)),), 64)
    small = ArchConfig(16, 3, 10, 16, 1, (StageConfig(24, 2, (BlockOp(3, 3),)),), 64)
    source = build_model(build_netspec(big))
    target = inherit_weights(source, build_model(build_netspec(small)))
    src_dw = source.get_submodule("stages.0.0.dw").conv.weight
    dst_dw = target.get_submodule("stages.0.0.dw").conv.weight
    assert torch.equal(dst_dw, src_dw[:48, :, 2:5, 2:5])
    src_proj = source.get_submodule("stages.0.0.project").conv.weight
    assert torch.equal(target.get_submodule("stages.0.0.project").conv.weight, src_proj[:24, :48])
    assert torch.equal(target.classifier.weight, source.classifier.weight)


def test_a_grouped_conv_inherits_each_output_channels_weights_on_its_own_groups_inputs():
    from autoc.arch.config import ArchConfig, BlockOp, StageConfig

    dense = ArchConfig(16, 3, 10, 16, 1, (StageConfig(32, 2, (BlockOp(5, 6),)),), 64)
    grouped = ArchConfig(16, 3, 10, 16, 1, (StageConfig(32, 2, (BlockOp(3, 3, groups=2),)),), 64)
    source = build_model(build_netspec(dense))
    fresh = build_model(build_netspec(grouped))
    target = inherit_weights(source, build_model(build_netspec(grouped)))
    for layer in ("stages.0.0.expand", "stages.0.0.project"):
        src, dst = source.get_submodule(layer).conv, target.get_submodule(layer).conv
        assert dst.groups == 2 and src.groups == 1
        per_in, per_out = dst.in_channels // 2, dst.out_channels // 2
        for o in (0, per_out - 1, per_out, dst.out_channels - 1):
            g = o // per_out
            assert torch.equal(dst.weight[o], src.weight[o, g * per_in : (g + 1) * per_in]), (layer, o)
        assert not torch.equal(dst.weight, fresh.get_submodule(layer).conv.weight)
    src_dw = source.get_submodule("stages.0.0.dw").conv.weight
    assert torch.equal(target.get_submodule("stages.0.0.dw").conv.weight, src_dw[:48, :, 1:4, 1:4])


@torch.no_grad()
def test_sorting_channels_by_importance_keeps_the_function_and_puts_the_strongest_first():
    cand = tiny_candidate(keep=1.0, precision="fp32")
    spec = cand.full_netspec()
    model = build_model(spec, seed=3).eval()
    _randomise_bn(model)
    ordered = sorted_by_importance(model, spec).eval()
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(ordered(x), model(x))
    frozen = frozen_groups(spec)
    scores = l1_channel_importance(ordered, spec)
    for group, score in scores.items():
        if group not in frozen:
            assert torch.all(score[:-1] >= score[1:]), group  # most important first
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), ordered.state_dict().values()))
