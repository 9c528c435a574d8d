"""largest_arch (teacher, weight source), minimal_candidates and maximal_candidates (cheapest and
slowest under an additive model)."""
from __future__ import annotations

import random

import pytest
import torch

from autoc.arch.builder import build_model
from autoc.arch.config import BlockOp
from autoc.arch.netspec import build_netspec
from autoc.space import parse_space
from autoc.space.extremes import _op_assignments

SPACES = ["mbv2-cifar", "fbnet-cifar", "small"]


def test_largest_arch_of_fbnet(get_space):
    big = get_space("fbnet-cifar").largest_arch()
    assert [s.depth for s in big.stages] == [1, 4, 4, 4, 4, 4, 1]
    assert all(op == BlockOp(kernel=5, expansion=6) for s in big.stages for op in s.ops)
    assert (big.stem_width, big.head_width, big.num_classes) == (16, 1504, 100)
    assert get_space("fbnet-cifar").largest_arch(num_classes=10).num_classes == 10


def test_largest_arch_combines_maxima_and_avoids_skip(small_space):
    small_space["stages"][2]["blocks"] = ["k3_e6_g2", "k5_e3", "skip"]
    big = parse_space(small_space).largest_arch()
    assert big.stages[2].ops == (BlockOp(kernel=5, expansion=6),) * 2
    small_space["stages"][2]["blocks"] = ["skip"]
    assert parse_space(small_space).largest_arch().stages[2].ops[0].skip


@pytest.mark.parametrize("name", SPACES)
def test_largest_arch_builds_and_runs(get_space, name):
    model = build_model(build_netspec(get_space(name).largest_arch())).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape[1] == get_space(name).classes


@pytest.mark.parametrize("name", SPACES)
def test_minimal_candidates_are_small_and_valid(get_space, name):
    space = get_space(name)
    candidates = space.minimal_candidates()
    assert candidates
    for cand in candidates:
        cand.netspec()
        arch = cand.arch
        assert [s.depth for s in arch.stages] == [min(s.depths) for s in space.stages]
        assert [s.width for s in arch.stages] == [min(s.widths) for s in space.stages]
        assert arch.stem_width == min(space.stem.widths) and arch.head_width == min(space.head.widths)
        ratios = {lp.keep_ratio for _, lp in cand.policy.layers}
        assert ratios <= {min(space.compression.keep_ratios), 1.0}
    precisions = {frozenset(lp.precision for _, lp in c.policy.layers) for c in candidates}
    assert precisions == {frozenset({p}) for p in space.compression.precisions}


def test_minimal_candidates_of_fbnet_include_all_skip(get_space):
    candidates = get_space("fbnet-cifar").minimal_candidates()
    assert len(candidates) == 9 * 2
    assert any(all(op.skip for s in c.arch.stages for op in s.ops) for c in candidates)


@pytest.mark.parametrize("name", ["mbv2-cifar", "small"])
@pytest.mark.parametrize("extreme", ["minimal", "maximal"])
def test_extreme_candidates_hold_the_additive_optimum_and_worst(get_space, name, extreme):
    """Any additive model ranking ops alike in every block finds its fastest among the minimal
    candidates and its slowest among the maximal ones."""
    space = get_space(name)
    pick, depths = (min, min) if extreme == "minimal" else (max, max)
    candidates = space.minimal_candidates() if extreme == "minimal" else space.maximal_candidates()
    rng = random.Random(0)
    names = sorted({op for st in space.stages for op in st.op_names})
    for _ in range(20):
        op_cost = {op: rng.uniform(0.1, 1.0) for op in names}
        weight = {(s, b): rng.uniform(0.5, 2.0) for s, st in enumerate(space.stages) for b in range(st.max_depth)}

        def cost(arch):
            return sum(weight[s, b] * op_cost[op.name] for s, st in enumerate(arch.stages) for b, op in enumerate(st.ops))

        extreme_cost = sum(
            pick(op_cost[op] for op in st.op_names) * sum(weight[s, b] for b in range(depths(st.depths)))
            for s, st in enumerate(space.stages)
        )
        assert pick(cost(c.arch) for c in candidates) == pytest.approx(extreme_cost)


def test_op_assignments():
    assert _op_assignments([("a", "b"), ("a", "b")]) == [("a", "a"), ("b", "b")]
    found = set(_op_assignments([("x", "y"), ("a", "b", "c"), ("a", "b", "c")]))
    assert found == {(o, p, p) for o in "xy" for p in "abc"}
    # Overlapping lists: each stage takes the best op it allows under some ranking.
    # ("a", "b") is absent: stage 0 preferring a over b contradicts stage 1 preferring b over a.
    assert set(_op_assignments([("a", "b"), ("a", "b", "c")])) == {("a", "a"), ("a", "c"), ("b", "b"), ("b", "c")}


@pytest.mark.parametrize("name", SPACES)
def test_maximal_candidates_are_the_largest_and_valid(get_space, name):
    space = get_space(name)
    candidates = space.maximal_candidates()
    for cand in candidates:
        cand.netspec()
        arch = cand.arch
        assert [s.depth for s in arch.stages] == [max(s.depths) for s in space.stages]
        assert [s.width for s in arch.stages] == [max(s.widths) for s in space.stages]
        assert arch.stem_width == max(space.stem.widths) and arch.head_width == max(space.head.widths)
        assert {lp.keep_ratio for _, lp in cand.policy.layers} == {max(space.compression.keep_ratios)}
    # one precision throughout, and alternating ones: the most fp32 <-> int8 switches
    precisions = {frozenset(lp.precision for _, lp in c.policy.layers) for c in candidates}
    assert {frozenset({p}) for p in space.compression.precisions} <= precisions
