"""Can the short estimate tell the chosen trial from the others? A paired test on the same images,
widened by how far the estimate moves between training seeds.

Every trial's estimate scores the same validation images, and each trial stores which of them
it classified right (``results.CORRECT_ATTR``: ``<n>:<base64 of the packed bits>``). Two trials'
accuracy difference on n shared images then has a paired standard error,
sqrt((share of images they disagree on − difference²) / n), much smaller than two independent
binomial errors when the networks err alike.

The images are not all: the same candidate estimated after another teacher or supernet and
fine-tuning seed scores differently. At the end of a search the top trials are estimated again
with another training seed (``autoc.search.seed_noise``); from those pairs, one estimate's
standard deviation over training seeds is sqrt(mean((first − rerun)²) / 2), and the difference
of two trials' estimates gets 2 of those variances on top of the images'. A trial whose deficit
against the chosen one is within ``Z_95`` of that total error is not separated from it: which of
them is better is not known from the estimate.
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from autoc.search.results import TrialRecord

Z_95 = 1.96
AUTO_FINALISTS = 8  # `--finalists auto` trains the top estimate and at most this many less one tied with it


@dataclass(frozen=True)
class Separation:
    """How far the chosen trial's accuracy leads another's on the shared images, with its standard error."""

    trial: int
    lead: float  # chosen accuracy − this trial's, on the shared images
    standard_error: float  # of that difference: paired over the images, and over training seeds where measured

    @property
    def separated(self) -> bool:
        return self.lead > Z_95 * self.standard_error


@dataclass(frozen=True)
class SeedNoise:
    """How far one estimate moves between training seeds, measured on ``trials`` rerun trials."""

    stdev: float  # standard deviation of one trial's estimate over training seeds (accuracy, not points)
    trials: int


def seed_noise(records: Iterable[TrialRecord]) -> SeedNoise | None:
    """From the trials estimated twice (``TrialRecord.rerun``); None with fewer than two."""
    pairs = [(r.accuracy if r.estimate is None else r.estimate, r.rerun) for r in records if r.rerun is not None]
    if len(pairs) < 2:
        return None
    return SeedNoise(stdev=math.sqrt(sum((a - b) ** 2 for a, b in pairs) / (2 * len(pairs))), trials=len(pairs))

    @property
    def separated(self) -> bool:
        return self.lead > Z_95 * self.standard_error


def encode_correct(correct) -> str:
    """``correct`` (bools, one per validation image, torch or numpy) as a short text."""
    bits = np.asarray(correct, dtype=bool).reshape(-1)
    return f"{bits.size}:{base64.b64encode(np.packbits(bits).tobytes()).decode('ascii')}"


def decode_correct(text: object) -> np.ndarray | None:
    """The bools ``encode_correct`` wrote, or None for anything that does not read as such."""
    if not isinstance(text, str) or ":" not in text:
        return None
    count, _, payload = text.partition(":")
    try:
        n = int(count)
        packed = np.frombuffer(base64.b64decode(payload, validate=True), dtype=np.uint8)
    except ValueError:
        return None
    if n < 1 or packed.size != (n + 7) // 8:
        return None
    return np.unpackbits(packed)[:n].astype(bool)


def paired_difference(chosen: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(accuracy of ``chosen`` − accuracy of ``other``, its paired standard error) on the same images."""
    if chosen.shape != other.shape or chosen.size == 0:
        raise ValueError(f"paired images differ: {chosen.shape} vs {other.shape}")
    lead = float(chosen.mean() - other.mean())
    disagree = float((chosen != other).mean())
    return lead, math.sqrt(max(disagree - lead * lead, 0.0) / chosen.size)


def separations(chosen: int, correct: Mapping[int, np.ndarray], *, seed_stdev: float = 0.0) -> list[Separation]:
    """The chosen trial against each other trial that scored the same images, closest first.
    ``seed_stdev``: one estimate's standard deviation over training seeds (``SeedNoise.stdev``)."""
    if chosen not in correct:
        return []
    mine = correct[chosen]
    rows = []
    for trial, bits in correct.items():
        if trial != chosen and bits.shape == mine.shape:
            lead, image_error = paired_difference(mine, bits)
            rows.append(Separation(trial, lead, math.sqrt(image_error ** 2 + 2 * seed_stdev ** 2)))
    return sorted(rows, key=lambda s: (_in_errors(s), s.trial))


def _in_errors(row: Separation) -> float:
    """The lead in standard errors; a network that errs exactly alike (no error) leads by 0 or by infinitely many."""
    if row.standard_error:
        return row.lead / row.standard_error
    return 0.0 if row.lead <= 0 else math.inf


def tied(rows: Iterable[Separation]) -> list[Separation]:
    """The rows whose lead is not significant: trials the estimate does not separate from the chosen one."""
    return [s for s in rows if not s.separated]


def correct_by_trial(records: Iterable[TrialRecord]) -> dict[int, np.ndarray]:
    """The stored per-image results of the feasible ``records`` that have readable ones."""
    return {r.number: bits for r in records if r.feasible and (bits := decode_correct(r.correct)) is not None}


def record_separations(chosen: int, records: Iterable[TrialRecord]) -> tuple[list[Separation], SeedNoise | None]:
    """``separations`` of the chosen trial among ``records``, with their measured seed noise."""
    records = list(records)
    noise = seed_noise(records)
    return separations(chosen, correct_by_trial(records), seed_stdev=noise.stdev if noise else 0.0), noise


def separation_text(best: TrialRecord, records: Iterable[TrialRecord], *, run_dir: Path | None = None) -> str | None:
    """One line for a search's summary: which feasible trials the estimate does not separate from
    ``best``. None when there is nothing to compare (no stored per-image results, one trial) or
    when ``best`` was chosen by the finalist stage, which answers this question by training."""
    if best.estimate is not None:
        return None
    records = list(records)
    rows, noise = record_separations(best.number, records)
    if not rows:
        return None
    size = decode_correct(best.correct).size  # rows exist, so the chosen trial's results read
    if noise is None:
        errors = f"{Z_95} paired standard errors on its {size:,} validation images"
        unmeasured = "; training-seed noise not measured (it comes on top)"
    else:
        errors = (f"{Z_95} standard errors (its {size:,} validation images, and training seeds: "
                  f"±{100 * noise.stdev:.1f} points per estimate, from {noise.trials} trials estimated twice)")
        unmeasured = ""
    ties = tied(rows)
    if not ties:
        closest = rows[0]
        return (f"estimate noise: trial {best.number} leads every other feasible trial by more than {errors} "
                f"(closest: trial {closest.trial}, {100 * closest.lead:+.1f} ± {100 * closest.standard_error:.1f} "
                f"points){unmeasured}")
    listed = ", ".join(str(s.trial) for s in ties[:8]) + (f" and {len(ties) - 8} more" if len(ties) > 8 else "")
    # with the run directory: the command that does it (the line is shown by `autoc search` and `autoc show`)
    command = (f"autoc search --resume {run_dir} --finalists auto" if run_dir is not None
               else "the finalist stage (finalists.count 'auto')")
    which = "them" if len(ties) < AUTO_FINALISTS else f"it and the {AUTO_FINALISTS - 1} closest"
    return (f"estimate noise: {len(ties)} of {len(rows)} other feasible trial(s) within {errors} of trial "
            f"{best.number} (trial{'s' if len(ties) > 1 else ''} {listed}): the estimate does not tell which is better{unmeasured}; "
            f"{command} trains {which} fully and chooses")
