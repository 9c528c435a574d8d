"""Sandwich-rule training makes both ends of the space accurate; the cache is keyed and atomic."""
from __future__ import annotations

import torch
import yaml

from autoc.cli import main
from autoc.training.loop import accuracy
from autoc.supernet import SupernetConfig, open_supernet, smallest_candidate, supernet_for_space, train_supernet
from supernet_fixtures import _one_thread, digits16, fbnet_space, tiny_space  # noqa: F401  (fixtures)

FAST = SupernetConfig(steps=2, batch_size=16, random_subnets=1)


def test_sandwich_training_trains_largest_and_smallest(tiny_space, digits16):
    supernet = supernet_for_space(tiny_space, num_classes=10)
    smallest = smallest_candidate(tiny_space, num_classes=10)

    def accuracies():
        return [accuracy(m, digits16.val_x, digits16.val_y) for m in (
            supernet.largest(calibration=digits16.train_x),
            supernet.extract(smallest, calibration=digits16.train_x),
        )]

    assert max(accuracies()) < 0.3  # untrained: near chance (0.1)
    losses = []
    train_supernet(supernet, tiny_space, digits16.train_x, digits16.train_y,
                   config=SupernetConfig(steps=20, batch_size=32, random_subnets=1, lr=0.3),
                   on_step=lambda step, loss: losses.append(loss))
    largest_acc, smallest_acc = accuracies()
    assert len(losses) == 20 and sum(losses[-5:]) < sum(losses[:5])
    # 20 steps on 400 digits; chance is 0.10
    assert largest_acc > 0.5 and smallest_acc > 0.25, (largest_acc, smallest_acc)


def test_cache_is_reused_keyed_and_atomic(tiny_space, digits16, tmp_path, capsys):
    first = open_supernet(tiny_space, digits16, cache_dir=tmp_path, config=FAST, progress=False)
    assert first.trained_now and first.path.is_file() and first.path.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no temporary files left
    again = open_supernet(tiny_space, digits16, cache_dir=tmp_path, config=FAST, progress=False)
    assert not again.trained_now and again.path == first.path
    for key, value in first.supernet.state_dict().items():
        assert torch.equal(value, again.supernet.state_dict()[key]), key
    other_seed = open_supernet(tiny_space, digits16, cache_dir=tmp_path,
                               config=SupernetConfig(steps=2, batch_size=16, random_subnets=1, seed=1), progress=False)
    assert other_seed.path != first.path

    first.path.write_bytes(b"truncated")
    rebuilt = open_supernet(tiny_space, digits16, cache_dir=tmp_path, config=FAST, progress=False)
    assert rebuilt.trained_now and "unreadable" in capsys.readouterr().err
    assert torch.load(rebuilt.path, weights_only=True)["format"] == "autoc.supernet/1"


def test_cli_trains_then_reuses(tiny_space, tmp_path, capsys):
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(yaml.safe_dump(tiny_space.to_dict()))
    argv = ["supernet", "train", "--space", str(space_file), "--steps", "2", "--batch-size", "8",
            "--random-subnets", "1", "--max-train", "60", "--max-val", "20", "--runs-dir", str(tmp_path / "runs"),
            "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "trained in" in out and "largest sub-network: validation accuracy" in out
    assert len(list((tmp_path / "runs" / "cache").glob("supernet-*.pt"))) == 1
    assert main(argv) == 0
    assert "loaded from the cache" in capsys.readouterr().out


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert main(["supernet", "train", "--steps", "0", "--runs-dir", str(tmp_path)]) == 2
    assert "--steps must be a whole number >= 1, got 0: set --steps to e.g. 150" in capsys.readouterr().err
    assert main(["supernet", "train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "absent"),
                 "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "set --download to fetch it" in err and "download=True" not in err
    assert not (tmp_path / "cache").exists()


def test_largest_first_stage_trains_only_the_largest_then_the_sandwich(tiny_space, digits16):
    supernet = supernet_for_space(tiny_space, num_classes=10)
    smallest = smallest_candidate(tiny_space, num_classes=10)
    steps = []
    train_supernet(supernet, tiny_space, digits16.train_x, digits16.train_y,
                   config=SupernetConfig(steps=1, largest_steps=20, largest_lr=0.3, lr=1e-9, batch_size=32,
                                         random_subnets=1),
                   on_step=lambda step, loss: steps.append(step))
    assert steps == list(range(21))  # one numbering over both stages, for the progress bar
    largest = accuracy(supernet.largest(calibration=digits16.train_x), digits16.val_x, digits16.val_y)
    assert largest > 0.5  # 20 steps of the largest alone on 400 digits; chance is 0.10


def test_largest_first_and_augmentation_change_the_cache_key_and_keep_old_keys(tiny_space, digits16, tmp_path):
    from autoc.supernet.cache import supernet_cache_path

    def path(config):
        return supernet_cache_path(tmp_path, space=tiny_space, data=digits16, config=config)

    assert len({path(FAST), path(SupernetConfig(steps=2, batch_size=16, random_subnets=1, largest_steps=3)),
                path(SupernetConfig(steps=2, batch_size=16, random_subnets=1, augment=True))}) == 3
    # caches written before these options existed stay valid: the key text is unchanged when they are off
    assert str(FAST) == ("SupernetConfig(steps=2, batch_size=16, lr=0.05, momentum=0.9, weight_decay=4e-05, "
                         "random_subnets=1, temperature=1.0, alpha=0.5, seed=0)")


def test_augmented_training_runs_and_is_seeded(tiny_space, digits16):
    def trained():
        torch.manual_seed(0)  # initial weights
        supernet = supernet_for_space(tiny_space, num_classes=10)
        train_supernet(supernet, tiny_space, digits16.train_x, digits16.train_y,
                       config=SupernetConfig(steps=2, largest_steps=1, batch_size=16, random_subnets=1, augment=True))
        return supernet.state_dict()

    first, again = trained(), trained()
    assert all(torch.equal(first[k], again[k]) for k in first)
