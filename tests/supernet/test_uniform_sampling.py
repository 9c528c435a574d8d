"""Single-path uniform sampling (SPOS): random sub-networks only, on the labels, no sandwich."""
from __future__ import annotations

import random

import pytest

from autoc.errors import OptionError
from autoc.training.loop import accuracy
from autoc.supernet import SupernetConfig, largest_candidate, supernet_for_space, train_supernet
from autoc.supernet.subnets import random_candidate
from supernet_fixtures import _one_thread, digits16, tiny_space, trained_subnets  # noqa: F401  (fixtures)


def test_uniform_steps_train_random_subnetworks_only(tiny_space, digits16, trained_subnets):
    trained = trained_subnets
    supernet = supernet_for_space(tiny_space, num_classes=10)
    losses = []
    train_supernet(supernet, tiny_space, digits16.train_x, digits16.train_y,
                   config=SupernetConfig(steps=60, batch_size=32, random_subnets=2, lr=0.2, sampling="uniform"),
                   on_step=lambda step, loss: losses.append(loss))
    assert len(trained) == 60 * 2  # two random sub-networks a step, nothing else
    largest = largest_candidate(tiny_space, num_classes=10).netspec()
    assert trained.count(largest) < len(trained) / 4  # not the sandwich's largest every step
    assert len({repr(s) for s in trained}) > len(trained) / 2  # drawn, not fixed
    assert len(losses) == 60 and sum(losses[-5:]) < sum(losses[:5])
    # the shared weights serve sub-networks drawn afresh: well above chance (0.10) on average
    rng = random.Random(5)
    drawn = [random_candidate(tiny_space, rng, num_classes=10) for _ in range(4)]
    accuracies = [accuracy(supernet.extract(c, calibration=digits16.train_x), digits16.val_x, digits16.val_y)
                  for c in drawn]
    assert sum(accuracies) / len(accuracies) > 0.25, accuracies


def test_uniform_sampling_has_its_own_cache_key_and_checks_its_options():
    sandwich, uniform = SupernetConfig(steps=5), SupernetConfig(steps=5, sampling="uniform")
    assert str(sandwich) == str(SupernetConfig(steps=5))
    assert "sampling" not in str(sandwich) and "sampling='uniform'" in str(uniform)
    assert "sampling='uniform'" in str(SupernetConfig(steps=5, largest_steps=3, sampling="uniform"))
    # the key of a sandwich supernet is what it was before the option existed: cached ones stay valid
    assert str(SupernetConfig(steps=1200, largest_steps=1200, lr=0.02, augment=True, random_subnets=1)) == (
        "SupernetConfig(steps=1200, batch_size=32, lr=0.02, momentum=0.9, weight_decay=4e-05, random_subnets=1, "
        "temperature=1.0, alpha=0.5, seed=0, largest_steps=1200, largest_lr=0.05, augment=True)")
    with pytest.raises(OptionError, match="sampling 'spos' is unknown"):
        SupernetConfig(sampling="spos")
    with pytest.raises(OptionError, match="set random_subnets >= 1"):
        SupernetConfig(sampling="uniform", random_subnets=0)


def test_search_and_cli_pass_the_sampling_on(tmp_path, capsys):
    from autoc.cli import main
    from autoc.search.context import supernet_config
    from autoc.search.options import SearchOptions

    options = SearchOptions(budget_ms=1.0, supernet=SupernetConfig(steps=10, sampling="uniform"))
    assert supernet_config(options) == SupernetConfig(steps=10, sampling="uniform")
    code = main(["supernet", "train", "--dataset", "digits", "--steps", "2",
                 "--sampling", "uniform", "--random-subnets", "1", "--max-train", "64", "--max-val", "32",
                 "--runs-dir", str(tmp_path), "--no-progress"])
    assert code == 0 and "2 uniform steps" in capsys.readouterr().out
    assert len(list((tmp_path / "cache").iterdir())) == 1
    code = main(["supernet", "train", "--dataset", "digits", "--steps", "2", "--sampling", "spos",
                 "--runs-dir", str(tmp_path / "bad"), "--no-progress"])
    assert code == 2 and "set --sampling to one of sandwich, uniform" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
