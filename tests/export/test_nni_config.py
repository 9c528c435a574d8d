"""The sparse ratio autoc writes for NNI gives back autoc's channel count under NNI's own rule."""
import json

import pytest

from autoc.export.nni_config import nni_pruned_count, nni_sparse_ratio


def nni_kept(channels: int, ratio: float) -> int:
    """NNI 3.0's rule, pruning/tools/sparse_gen.py ``_ratio_mask``: int(numel * sparse_ratio) channels pruned."""
    if ratio == 0.0:
        return channels
    if ratio == 1.0:
        return 0
    assert 0.0 < ratio < 1.0
    return channels - int(channels * ratio)


def test_written_ratio_makes_nni_keep_exactly_the_kept_count_for_every_width_up_to_2048():
    wrong = []
    for channels in range(1, 2049):
        for kept in range(1, channels + 1):
            ratio = json.loads(json.dumps(nni_sparse_ratio(channels, kept=kept)))  # as NNI reads the file
            if nni_kept(channels, ratio) != kept:
                wrong.append((channels, kept, ratio))
    assert not wrong, wrong[:5]


def test_written_ratio_is_the_nearest_float_that_works():
    for channels, kept in ((7, 4), (144, 104), (96, 72), (1000, 1)):
        ratio = nni_sparse_ratio(channels, kept=kept)
        assert abs(ratio - (1 - kept / channels)) < 1e-12
        assert nni_pruned_count(channels, ratio) == channels - kept


def test_rounded_ratios_would_keep_a_channel_more_somewhere():
    # why the ratio is not simply rounded: NNI truncates, so a ratio rounded down loses a pruned channel
    drift = [(c, k) for c in range(1, 257) for k in range(1, c) if c - int(c * round(1 - k / c, 6)) != k]
    assert drift


def test_kept_count_outside_the_width_is_refused():
    with pytest.raises(ValueError, match="kept must lie in 1..8"):
        nni_sparse_ratio(8, kept=0)
