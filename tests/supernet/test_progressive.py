"""Progressive shrinking: sandwich phases that make kernel, depth, expansion, then width elastic."""
from __future__ import annotations

import random

from autoc.space import parameter_plan
from autoc.space.assemble import assemble
from autoc.supernet import SupernetConfig, smallest_candidate, supernet_for_space, train_supernet
from autoc.supernet.subnets import ALL_DIMENSIONS, DIMENSIONS, extreme_choices, random_candidate
from supernet_fixtures import _one_thread, digits16, fbnet_space, tiny_space, trained_subnets  # noqa: F401  (fixtures)


def _shape(spec):
    """What a sub-network is made of: (depth per stage, every conv's kernel and channel counts)."""
    return tuple((c.name, c.kernel, c.cin, c.cout) for c in spec.convs())


def test_phases_add_one_dimension_each_and_share_out_every_step():
    phases = SupernetConfig(steps=10, progressive=True).phases()
    assert [sorted(e) for e, _ in phases] == [sorted(DIMENSIONS[: i + 1]) for i in range(4)]
    assert sum(steps for _, steps in phases) == 10 and all(steps in (2, 3) for _, steps in phases)
    assert SupernetConfig(steps=10).phases() == [(ALL_DIMENSIONS, 10)]


def test_all_dimensions_elastic_draws_exactly_what_it_drew_before(tiny_space):
    """The default (all elastic) consumes the random stream as before: cached supernets stay valid."""
    drawn = random_candidate(tiny_space, random.Random(3), num_classes=10)
    rng = random.Random(3)
    before = assemble(tiny_space, {p.name: rng.choice(p.choices) for p in parameter_plan(tiny_space)}, num_classes=10)
    assert drawn == before


def test_kernel_phase_varies_kernels_only(tiny_space):
    largest = assemble(tiny_space, extreme_choices(tiny_space, largest=True), num_classes=10)
    largest_spec = smallest_candidate(tiny_space, num_classes=10, elastic=frozenset()).netspec()
    assert _shape(largest_spec) == _shape(largest.netspec())  # nothing elastic: the largest network
    rng = random.Random(0)
    specs = [random_candidate(tiny_space, rng, num_classes=10, elastic=frozenset({"kernel"})).netspec()
             for _ in range(30)]
    # same convs and channels as the largest network, kernels drawn from every choice
    assert all([(n, ci, co) for n, _, ci, co in _shape(s)] == [(n, ci, co) for n, _, ci, co in _shape(largest_spec)]
               for s in specs)
    assert {k for s in specs for _, k, _, _ in _shape(s)} == {1, 3, 5, 7}
    smallest = smallest_candidate(tiny_space, num_classes=10, elastic=frozenset({"kernel"})).netspec()
    assert {c.kernel for c in smallest.convs() if c.depthwise} == {3}
    assert [c.cout for c in smallest.convs()] == [c.cout for c in largest_spec.convs()]


def test_progressive_training_trains_each_phase_on_its_dimensions_only(tiny_space, digits16, trained_subnets):
    trained = trained_subnets
    supernet = supernet_for_space(tiny_space, num_classes=10)
    steps = []
    config = SupernetConfig(steps=8, batch_size=16, random_subnets=2, progressive=True, lr=0.01)
    train_supernet(supernet, tiny_space, digits16.train_x, digits16.train_y, config=config,
                   on_step=lambda step, loss: steps.append(step))
    assert steps == list(range(8))
    per_step = 1 + 1 + config.random_subnets
    assert len(trained) == 8 * per_step
    largest = supernet.largest_subnet()
    channels = [c.cout for c in largest.convs()]
    kernel_phase = trained[: 2 * per_step]  # 2 steps: kernel elastic only
    assert all([c.cout for c in s.convs()] == channels for s in kernel_phase)
    assert len({_shape(s) for s in kernel_phase}) > 2  # more than the largest and one fixed smallest
    width_phase = trained[6 * per_step :]  # the last 2 steps: every dimension elastic
    assert any(sum(c.cout for c in s.convs()) < sum(channels) / 2 for s in width_phase)


def test_progressive_is_part_of_the_cache_key_only_when_on():
    assert "progressive" not in str(SupernetConfig(largest_steps=3))
    assert "progressive=True" in str(SupernetConfig(largest_steps=3, progressive=True))
    assert "progressive=True" in str(SupernetConfig(progressive=True))


def test_final_phase_share_gives_the_all_elastic_phase_its_steps_and_is_checked():
    import pytest

    from autoc.errors import OptionError

    phases = SupernetConfig(steps=1200, progressive=True, final_phase_share=0.5).phases()
    assert [steps for _, steps in phases] == [200, 200, 200, 600] and phases[-1][0] == ALL_DIMENSIONS
    assert "final_phase_share=0.5" in str(SupernetConfig(progressive=True, final_phase_share=0.5))
    assert "final_phase_share" not in str(SupernetConfig(progressive=True))
    for bad in (0.0, 1.5):
        with pytest.raises(OptionError, match="final_phase_share .the final phase's share"):
            SupernetConfig(progressive=True, final_phase_share=bad)


def test_search_and_cli_pass_the_progressive_recipe_on(tmp_path, capsys):
    from autoc.cli import main
    from autoc.search.context import supernet_config
    from autoc.search.options import SearchOptions

    options = SearchOptions(budget_ms=1.0, seed=3,
                            supernet=SupernetConfig(steps=10, progressive=True, final_phase_share=0.5))
    assert supernet_config(options) == SupernetConfig(steps=10, progressive=True, final_phase_share=0.5, seed=3)
    code = main(["supernet", "train", "--dataset", "digits", "--steps", "8", "--progressive",
                 "--final-phase-share", "2", "--runs-dir", str(tmp_path), "--no-progress"])
    assert code == 2 and "set --final-phase-share to e.g. 0.5" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
