"""Sampling through Optuna trials: static parameters, valid candidates, channel ties, round trips."""
from __future__ import annotations

import optuna
import pytest
import torch

from autoc.arch.builder import build_model
from autoc.arch.netspec import block_precision, build_netspec, frozen_groups, group_producers
from autoc.candidate import Candidate
from autoc.errors import SpaceError
from autoc.space import candidate_from_params, parameter_plan, parse_space, sample_candidate, search_distributions

N_SAMPLES = 200
SPACES = ["mbv2-cifar", "fbnet-cifar", "small"]


@pytest.fixture(scope="module", params=SPACES)
def sampled(request, get_space):
    """(space, [(trial, candidate)]) for N_SAMPLES random trials asked from one study."""
    space = get_space(request.param)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    pairs = []
    for _ in range(N_SAMPLES):
        trial = study.ask()
        pairs.append((trial, sample_candidate(space, trial)))
    return space, pairs


def test_every_sample_builds_a_valid_netspec(sampled):
    space, pairs = sampled
    for _, cand in pairs:
        spec = cand.netspec()
        assert spec.num_classes == space.classes
        assert set(spec.layer_names()) == {name for name, _ in cand.policy.layers}
        for block in spec.blocks:
            block_precision(block, cand.policy)  # one precision per block


def test_some_samples_run_forward(sampled):
    _, pairs = sampled
    for _, cand in pairs[:3]:
        model = build_model(cand.netspec()).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, 32, 32))
        assert out.shape == (1, cand.arch.num_classes)


def test_parameters_are_static(sampled):
    space, pairs = sampled
    expected = search_distributions(space)
    for trial, _ in pairs:
        assert trial.distributions == expected
    assert all(len(d.choices) > 1 for d in expected.values())


def test_tied_groups_share_keep_ratio_and_frozen_groups_keep_all(sampled):
    space, pairs = sampled
    for _, cand in pairs:
        full = cand.full_netspec()
        frozen = frozen_groups(full)
        for group, convs in group_producers(full).items():
            ratios = {cand.policy.get(c.name).keep_ratio for c in convs}
            assert len(ratios) == 1, (group, ratios)
            if group in frozen:
                assert ratios == {1.0}
    if len(space.compression.keep_ratios) > 1:  # pruning is actually sampled
        assert any(lp.keep_ratio < 1.0 for _, cand in pairs for _, lp in cand.policy.layers)


def test_bit_widths_follow_precision(sampled):
    space, pairs = sampled
    for _, cand in pairs:
        for _, lp in cand.policy.layers:
            if lp.precision == "fp32":
                assert (lp.weight_bits, lp.act_bits) == (32, 32)
            else:
                assert lp.act_bits == 8 and lp.weight_bits in space.compression.weight_bits


def test_largest_arch_dominates_samples(sampled):
    space, pairs = sampled
    big = space.largest_arch()
    for _, cand in pairs:
        arch = cand.arch
        assert arch.stem_width <= big.stem_width and arch.head_width <= big.head_width
        for stage, top in zip(arch.stages, big.stages, strict=True):
            assert stage.depth <= top.depth and stage.width <= top.width
            for op in stage.ops:
                if not op.skip:
                    assert not top.ops[0].skip
                    assert op.kernel <= top.ops[0].kernel and op.expansion <= top.ops[0].expansion


def test_candidate_from_params_round_trip(sampled):
    space, pairs = sampled
    for trial, cand in pairs:
        assert candidate_from_params(space, trial.params) == cand
        assert Candidate.from_dict(cand.to_dict()) == cand


def test_fixed_trial_reproduces_sample(sampled):
    space, pairs = sampled
    for trial, cand in pairs[:20]:
        assert sample_candidate(space, optuna.trial.FixedTrial(trial.params)) == cand


def test_ask_with_fixed_distributions_matches(get_space):
    space = get_space("mbv2-cifar")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask(search_distributions(space))
    assert sample_candidate(space, trial) == candidate_from_params(space, trial.params)


def test_parameter_names(get_space):
    mbv2 = search_distributions(get_space("mbv2-cifar"))
    assert {"stem.width", "stage3.depth", "stage3.block3.op", "stage3.block3.keep_out", "head.wbits"} <= set(mbv2)
    assert "stage0.depth" not in mbv2  # a single choice is not suggested
    assert "stage0.block0.keep_hidden" not in mbv2  # no expand conv in stage 0
    assert "stage1.block1.keep_hidden" in mbv2
    assert mbv2["stage3.block0.op"].choices == ("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6")
    fbnet = search_distributions(get_space("fbnet-cifar"))
    assert len([n for n in fbnet if n.endswith(".op")]) == 22
    assert not any(n.endswith((".keep", ".keep_out", ".keep_hidden", ".wbits", ".width", ".depth")) for n in fbnet)
    small = search_distributions(get_space("small"))
    assert "stage2.op" in small and "stage2.block0.op" not in small


def test_shared_stage_op_applies_to_every_block(get_space):
    space = get_space("small")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        cand = sample_candidate(space, study.ask())
        assert len(set(cand.arch.stages[2].ops)) == 1


def test_residual_chain_and_stem_tie(get_space):
    space = get_space("mbv2-cifar")
    params = {p.name: p.choices[-1] for p in parameter_plan(space)}
    params.update({
        "stem.width": 16, "stem.keep": 0.5, "stage0.width": 16, "stage0.block0.keep_out": 1.0,
        "stage1.width": 16, "stage1.depth": 2, "stage1.block0.keep_out": 0.75, "stage1.block1.keep_out": 1.0,
        "stage1.block0.keep_hidden": 0.75,
    })
    cand = candidate_from_params(space, params)
    for name in ("stem", "stages.0.0.dw", "stages.0.0.project", "stages.1.0.project", "stages.1.1.project"):
        assert cand.policy.get(name).keep_ratio == 0.5
    assert cand.policy.get("stages.1.0.expand").keep_ratio == cand.policy.get("stages.1.0.dw").keep_ratio == 0.75
    assert cand.netspec().stem.cout == 8


def test_num_classes_override(get_space):
    space = get_space("fbnet-cifar")
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    cand = sample_candidate(space, trial, num_classes=10)
    assert cand.arch.num_classes == 10 and build_netspec(cand.arch).num_classes == 10
    assert candidate_from_params(space, trial.params, num_classes=10) == cand


def test_params_from_another_space_are_rejected(get_space):
    space = get_space("mbv2-cifar")
    params = {p.name: p.choices[0] for p in parameter_plan(space)}
    with pytest.raises(SpaceError, match=r"mbv2-cifar.yaml: trial param stage1.width = 17 is not one of \[16, 24\]"):
        candidate_from_params(space, {**params, "stage1.width": 17})
    del params["stage1.width"]
    with pytest.raises(SpaceError, match="lack 'stage1.width'"):
        candidate_from_params(space, params)


def test_grouped_ops_with_pruning_keep_grouped_channels(small_space):
    small_space["stages"][2]["blocks"] = ["k3_e1_g2"]
    space = parse_space(small_space)
    params = {p.name: p.choices[0] for p in parameter_plan(space)}  # keep 0.5 everywhere
    params.update({"stage1.width": 24, "stage2.width": 24})  # the chain feeds grouped convs
    cand = candidate_from_params(space, params)
    spec = cand.netspec()
    assert spec.blocks[-1].cin == 24 and cand.policy.get("stages.1.0.project").keep_ratio == 1.0
    assert cand.policy.get("stem").keep_ratio == 0.5
