"""The paired test that says which trials the short estimate does not separate from the chosen one."""
import math
from pathlib import Path

import numpy as np
import pytest

from autoc.search.finalists import tied_finalists
from autoc.search.results import TrialRecord
from autoc.search.separation import (Z_95, decode_correct, encode_correct, paired_difference, seed_noise,
                                     separation_text, separations, tied)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1000, 10_000])
def test_per_image_results_round_trip(n):
    bits = np.random.default_rng(n).random(n) < 0.6
    text = encode_correct(bits)
    assert np.array_equal(decode_correct(text), bits)
    assert len(text) < n // 6 + 16  # packed: about 1.3 characters per 8 images


@pytest.mark.parametrize("text", [None, 3, "", "abc", "5:???", "0:", "-1:AA==", "100:AA==", "x:AA==", "9:AA=="])
def test_unreadable_per_image_results_are_none(text):
    assert decode_correct(text) is None


def _bootstrap_sd(a: np.ndarray, b: np.ndarray, *, draws: int = 2000) -> float:
    rng = np.random.default_rng(0)
    picks = rng.integers(0, a.size, size=(draws, a.size))
    return float(np.std(a[picks].mean(1) - b[picks].mean(1)))


def test_paired_error_matches_resampling_the_images():
    rng = np.random.default_rng(1)
    a = rng.random(2500) < 0.6
    alike = a ^ (rng.random(2500) < 0.08)  # errs like a on all but ~8% of the images
    independent = rng.random(2500) < 0.58
    for other in (alike, independent):
        lead, error = paired_difference(a, other)
        assert lead == pytest.approx(a.mean() - other.mean())
        assert error == pytest.approx(_bootstrap_sd(a, other), rel=0.08)
    # networks that err alike are compared far more precisely than two independent binomial errors say
    binomial = np.sqrt(0.6 * 0.4 / 2500 * 2)
    assert paired_difference(a, alike)[1] < 0.45 * binomial
    assert paired_difference(a, independent)[1] == pytest.approx(binomial, rel=0.1)


def test_a_one_point_lead_is_separated_when_errors_are_alike_and_not_when_independent():
    rng = np.random.default_rng(2)
    n = 2500
    chosen = np.zeros(n, bool)
    chosen[: int(0.60 * n)] = True
    alike = chosen.copy()
    alike[: 25] = False  # the same network but wrong on 25 more images: 1 point behind
    independent = rng.permutation(np.arange(n) < int(0.59 * n))
    rows = separations(0, {0: chosen, 1: alike, 2: independent})
    by_trial = {s.trial: s for s in rows}
    assert by_trial[1].lead == pytest.approx(0.01) and by_trial[2].lead == pytest.approx(0.01)
    assert by_trial[1].separated and not by_trial[2].separated
    assert [s.trial for s in tied(rows)] == [2]
    assert rows[0].trial == 2  # closest (smallest lead in standard errors) first


def test_a_network_that_errs_exactly_alike_is_a_tie_and_the_closest():
    chosen = np.arange(100) < 60
    rows = separations(0, {0: chosen, 1: chosen.copy(), 2: np.arange(100) < 50})
    assert [s.trial for s in rows] == [1, 2] and rows[0].standard_error == 0 and not rows[0].separated


def test_trials_on_other_images_or_without_results_are_left_out():
    chosen = np.array([True, False, True, True])
    assert [s.trial for s in separations(0, {0: chosen, 1: np.array([True, True, False]), 2: chosen})] == [2]
    assert separations(5, {0: chosen}) == []
    with pytest.raises(ValueError, match="paired images differ"):
        paired_difference(chosen, chosen[:3])


def _record(number: int, bits: np.ndarray | None, *, feasible: bool = True, estimate=None, rerun=None) -> TrialRecord:
    return TrialRecord(number=number, accuracy=float(bits.mean()) if bits is not None else 0.0, latency_ms=1.0,
                       size_bytes=1, params=1, macs=1, feasible=feasible, candidate={}, weights=None,
                       estimate=estimate, correct=None if bits is None else encode_correct(bits), rerun=rerun)


def test_summary_line_names_the_tied_trials_and_the_finalist_stage():
    rng = np.random.default_rng(3)
    n = 1000
    best = rng.random(n) < 0.7
    close = best.copy()  # half a point behind, errs differently on 9.5% of the images: tied
    close[np.flatnonzero(best)[:50]] = False
    close[np.flatnonzero(~best)[:45]] = True
    far = best & (rng.random(n) < 0.8)  # wrong on a fifth of best's right images: separated
    records = [_record(0, best), _record(1, close), _record(2, far), _record(3, None, feasible=False)]
    lead, error = paired_difference(best, close)
    assert 0 <= lead <= Z_95 * error  # the draw above makes trial 1 a tie
    line = separation_text(records[0], records)
    assert line.startswith("estimate noise: 1 of 2 other feasible trial(s) within 1.96 paired standard errors "
                           "on its 1,000 validation images of trial 0 (trial 1)")
    assert "training-seed noise not measured" in line and "the finalist stage (finalists.count 'auto')" in line
    told = separation_text(records[0], records, run_dir=Path("runs/s"))
    assert told.endswith("autoc search --resume runs/s --finalists auto trains them fully and chooses")

    alone = separation_text(records[0], [records[0], records[2]])
    assert "trial 0 leads every other feasible trial" in alone and "closest: trial 2" in alone


def test_no_line_without_anything_to_compare_or_after_the_finalist_stage():
    bits = np.array([True, False, True])
    assert separation_text(_record(0, bits), [_record(0, bits)]) is None
    assert separation_text(_record(0, None), [_record(0, None), _record(1, None)]) is None
    finalist = _record(0, bits, estimate=0.4)  # accuracy from training, chosen by the finalist stage
    assert separation_text(finalist, [finalist, _record(1, bits)]) is None


def test_seed_noise_is_one_estimates_spread_over_training_seeds_from_the_rerun_pairs():
    bits = np.arange(100) < 60
    records = [_record(0, bits, rerun=0.50), _record(1, np.arange(100) < 40, rerun=0.44), _record(2, bits)]
    noise = seed_noise(records)
    # pairs (0.60, 0.50) and (0.40, 0.44): var = (0.1² + 0.04²) / (2 * 2)
    assert noise.trials == 2 and noise.stdev == pytest.approx(math.sqrt((0.01 + 0.0016) / 4))
    assert seed_noise(records[1:]) is None  # one pair says too little
    finalist = _record(3, bits, estimate=0.30, rerun=0.30)  # compared by its estimate, not its trained accuracy
    assert seed_noise([finalist, _record(4, bits, rerun=0.6)]).stdev == 0


def test_a_lead_the_images_separate_is_a_tie_once_the_estimate_moves_more_between_seeds():
    rng = np.random.default_rng(3)
    best = rng.random(1000) < 0.7
    far = best & (rng.random(1000) < 0.8)  # 14 points behind, far beyond the images' noise
    steady = [_record(0, best, rerun=best.mean() + 0.01), _record(1, far, rerun=far.mean() - 0.01)]
    shaky = [_record(0, best, rerun=best.mean() - 0.15), _record(1, far, rerun=far.mean() + 0.15)]
    assert "leads every other feasible trial" in separation_text(steady[0], steady)
    line = separation_text(shaky[0], shaky)
    assert line.startswith("estimate noise: 1 of 1 other feasible trial(s) within 1.96 standard errors (its 1,000 "
                           "validation images, and training seeds: ±10.6 points per estimate, from 2 trials estimated "
                           "twice) of trial 0 (trial 1)")  # sqrt((0.15² + 0.15²) / 4)
    assert "not measured" not in line
    assert [r.number for r in tied_finalists(shaky)] == [0, 1]
    assert [r.number for r in tied_finalists(steady)] == [0]
