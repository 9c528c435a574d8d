"""A candidate at a smaller resolution than the space's largest gets the loaded images resized to its own."""
import pytest
import torch

from autoc.data.datasets import load_dataset, resized
from autoc.errors import DataError


def test_resizing_changes_the_images_size_and_nothing_else():
    data = load_dataset("digits", input_size=24, max_train=500, max_selection=20)
    small = resized(data, 16)
    for x in (small.train_x, small.val_x, small.selection_x):
        assert tuple(x.shape[-2:]) == (16, 16)
    assert small.input_size == 16 and small.preprocessing.input_size == 16
    assert torch.equal(small.train_y, data.train_y) and torch.equal(small.val_y, data.val_y)
    assert small.classes == data.classes and small.mean == data.mean
    assert small.fingerprint != data.fingerprint and small.train_fingerprint != data.train_fingerprint
    assert data.input_size == 24  # the loaded data is left as it was


def test_resizing_down_is_close_to_loading_at_that_size():
    direct = load_dataset("digits", input_size=16)
    via = resized(load_dataset("digits", input_size=32), 16)
    # the same images, normalised by nearly the same statistics: resizing commutes with normalising
    assert (direct.val_x - via.val_x).abs().mean() < 0.2


def test_the_loaded_size_is_returned_as_it_is():
    data = load_dataset("digits", input_size=16)
    assert resized(data, 16) is data


def test_a_non_positive_size_is_a_one_line_error():
    with pytest.raises(DataError, match="input_size"):
        resized(load_dataset("digits", input_size=16), 0)
