"""The reference recipe: crop-and-flip augmentation and the cache of reference accuracies."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from autoc.data.datasets import load_dataset
from autoc.evaluate.recipe import reference_accuracy, reference_key
from autoc.training.loop import TrainConfig, crop_and_flip
from helpers import tiny_candidate


def _windows(image: torch.Tensor, padding: int) -> list[torch.Tensor]:
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    h, w = image.shape[-2:]
    crops = [padded[:, dy : dy + h, dx : dx + w] for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)]
    return crops + [c.flip(-1) for c in crops]


def test_crop_and_flip_gives_shifted_or_mirrored_windows_of_each_image():
    images = torch.rand(64, 3, 8, 8) + 0.1  # no zeros inside, so padding shows where a shift happened
    out = crop_and_flip(images, generator=torch.Generator().manual_seed(0), padding=2)
    assert out.shape == images.shape
    matches = []
    for image, augmented in zip(images, out):
        windows = _windows(image, 2)
        matches.append(next(i for i, window in enumerate(windows) if torch.equal(augmented, window)))
    mirrored = sum(i >= 25 for i in matches)
    centred = sum(i % 25 == 12 for i in matches)
    assert 16 <= mirrored <= 48 and centred < 12  # random, not a fixed transform


def test_crop_and_flip_depends_only_on_the_generator_seed():
    images = torch.rand(16, 3, 8, 8)
    first = crop_and_flip(images, generator=torch.Generator().manual_seed(3))
    again = crop_and_flip(images, generator=torch.Generator().manual_seed(3))
    other = crop_and_flip(images, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", input_size=16, max_train=128, max_val=64)


def test_reference_accuracy_is_trained_once_then_read_back(digits, tmp_path):
    torch.set_num_threads(1)
    candidate = tiny_candidate(precision="fp32", bits=32)
    recipe = TrainConfig(steps=3, batch_size=16, alpha=0.0, augment=True)
    first = reference_accuracy(candidate, digits, config=recipe, cache_dir=tmp_path)
    again = reference_accuracy(candidate, digits, config=recipe, cache_dir=tmp_path)
    assert not first.cached and again.cached
    assert (again.accuracy, again.seconds) == (first.accuracy, first.seconds)
    stored = json.loads(next(tmp_path.glob("reference-*.json")).read_text())
    assert stored["recipe"]["steps"] == 3 and stored["data"] == digits.fingerprint
    assert stored["device"] == "cpu"  # where it trained: the seconds depend on it, the key does not


def test_reference_key_changes_with_recipe_candidate_and_data(digits):
    candidate = tiny_candidate(precision="fp32", bits=32)
    recipe = TrainConfig(steps=3, batch_size=16, alpha=0.0)
    key = reference_key(candidate, digits, config=recipe)
    assert key == reference_key(candidate, digits, config=recipe)
    assert key != reference_key(candidate, digits, config=dataclasses.replace(recipe, augment=True))
    assert key != reference_key(tiny_candidate(precision="int8", bits=8), digits, config=recipe)
    assert key != reference_key(candidate, dataclasses.replace(digits, fingerprint="other"), config=recipe)


def test_corrupt_reference_entry_is_retrained_not_trusted(digits, tmp_path):
    torch.set_num_threads(1)
    candidate = tiny_candidate(precision="fp32", bits=32)
    recipe = TrainConfig(steps=2, batch_size=16, alpha=0.0)
    first = reference_accuracy(candidate, digits, config=recipe, cache_dir=tmp_path)
    entry = next(tmp_path.glob("reference-*.json"))
    entry.write_text(entry.read_text()[:20])
    again = reference_accuracy(candidate, digits, config=recipe, cache_dir=tmp_path)
    assert not again.cached and again.accuracy == pytest.approx(first.accuracy)  # seeded: same result
    assert json.loads(entry.read_text())["accuracy"] == pytest.approx(first.accuracy)


def test_cached_only_lookup_trains_nothing(digits, tmp_path):
    torch.set_num_threads(1)
    candidate = tiny_candidate(precision="fp32", bits=32)
    recipe = TrainConfig(steps=2, batch_size=16, alpha=0.0)
    assert reference_accuracy(candidate, digits, config=recipe, cache_dir=tmp_path, train_missing=False) is None
    assert not list(tmp_path.iterdir())
    trained = reference_accuracy(candidate, digits, config=recipe, cache_dir=tmp_path)
    found = reference_accuracy(candidate, digits, config=recipe, cache_dir=tmp_path, train_missing=False)
    assert found.cached and found.accuracy == trained.accuracy


def test_a_selection_score_comes_from_the_same_trained_model_and_is_cached(tmp_path):
    torch.set_num_threads(1)
    data = load_dataset("digits", input_size=16, max_train=128, max_val=64, max_selection=96)
    selection = data.selection_as_val()
    candidate = tiny_candidate(precision="fp32", bits=32)
    recipe = TrainConfig(steps=20, batch_size=16, alpha=0.0)
    plain = reference_accuracy(candidate, data, config=recipe, cache_dir=tmp_path)
    assert plain.selection_accuracy is None
    # the cached entry has no selection score: trained again (same seed, same model), then both kept
    first = reference_accuracy(candidate, data, config=recipe, cache_dir=tmp_path, selection=selection)
    again = reference_accuracy(candidate, data, config=recipe, cache_dir=tmp_path, selection=selection)
    assert not first.cached and again.cached
    assert first.accuracy == plain.accuracy  # the held-out score is the same model's
    assert again.selection_accuracy == first.selection_accuracy is not None
    assert 0.0 <= first.selection_accuracy <= 1.0
    assert reference_accuracy(candidate, data, config=recipe, cache_dir=tmp_path).cached
    other = load_dataset("digits", input_size=16, max_train=100, max_val=64, max_selection=96).selection_as_val()
    with pytest.raises(ValueError, match="same training items"):
        reference_accuracy(candidate, data, config=recipe, cache_dir=tmp_path, selection=other)


def test_stop_after_gives_the_full_runs_model_at_that_step():
    from autoc.arch.builder import build_model
    from autoc.training.loop import train

    data = load_dataset("digits", input_size=16, max_train=128, max_val=64)
    spec = tiny_candidate(precision="fp32", bits=32).netspec()
    config = TrainConfig(steps=10, batch_size=16, alpha=0.0, augment=True)
    snapshot = {}
    torch.manual_seed(0)
    full = build_model(spec)

    def keep_step_4(step, _loss):
        if step == 4:
            snapshot.update({k: v.clone() for k, v in full.state_dict().items()})

    train(full, data.train_x, data.train_y, config=config, on_step=keep_step_4)
    torch.manual_seed(0)
    early = build_model(spec)
    steps = []
    train(early, data.train_x, data.train_y, config=config, stop_after=5, on_step=lambda s, _: steps.append(s))
    assert steps == [0, 1, 2, 3, 4]
    for name, value in early.state_dict().items():
        torch.testing.assert_close(value, snapshot[name], msg=name)
    # its own 5-step schedule (lr decays to 0 by step 5) is another model
    torch.manual_seed(0)
    short = build_model(spec)
    train(short, data.train_x, data.train_y, config=dataclasses.replace(config, steps=5))
    assert any(not torch.equal(a, b) for a, b in zip(short.state_dict().values(), early.state_dict().values()))
