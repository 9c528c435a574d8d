"""Can the short estimate tell the chosen trial from the others? A paired test on the same images.

Every trial's estimate scores the same validation images, and each trial stores which of them
it classified right (``results.CORRECT_ATTR``: ``<n>:<base64 of the packed bits>``). Two trials'
accuracy difference on n shared images then has a paired standard error,
sqrt((share of images they disagree on − difference²) / n), much smaller than two independent
binomial errors when the networks err alike. A trial whose deficit against the chosen one is
within ``Z_95`` of those errors is not separated from it by this validation sample: which of
them is better is not known from the estimate.

This is the noise of the images only. The estimate also moves with the supernet's training seed
and the fine-tuning draws (README, supernet results), so a separated pair may still swap under
a proper training run; a tied pair certainly may.
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
    trial: int
    lead: float  # chosen accuracy − this trial's, on the shared images
    standard_error: float  # paired standard error of that difference

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


def separations(chosen: int, correct: Mapping[int, np.ndarray]) -> list[Separation]:
    """The chosen trial against each other trial that scored the same images, closest first."""
    if chosen not in correct:
        return []
    mine = correct[chosen]
    rows = [Separation(trial, *paired_difference(mine, bits))
            for trial, bits in correct.items() if trial != chosen and bits.shape == mine.shape]
    return sorted(rows, key=lambda s: (_in_errors(s), s.trial))


def _in_errors(row: Separation) -> float:
    """The lead in standard errors; a network that errs exactly alike (no error) leads by 0 or by infinitely many."""
    if row.standard_error:
        return row.lead / row.standard_error
    return 0.0 if row.lead <= 0 else math.inf


def tied(rows: Iterable[Separation]) -> list[Separation]:
    return [s for s in rows if not s.separated]


def correct_by_trial(records: Iterable[TrialRecord]) -> dict[int, np.ndarray]:
    """The stored per-image results of the feasible ``records`` that have readable ones."""
    return {r.number: bits for r in records if r.feasible and (bits := decode_correct(r.correct)) is not None}


def separation_text(best: TrialRecord, records: Iterable[TrialRecord], *, run_dir: Path | None = None) -> str | None:
    """One line for a search's summary: which feasible trials the estimate does not separate from
    ``best``. None when there is nothing to compare (no stored per-image results, one trial) or
    when ``best`` was chosen by the finalist stage, which answers this question by training."""
    if best.estimate is not None:
        return None
    correct = correct_by_trial(records)
    rows = separations(best.number, correct)
    if not rows:
        return None
    where = f"on its {correct[best.number].size:,} validation images"
    ties = tied(rows)
    if not ties:
        closest = rows[0]
        return (f"estimate noise: trial {best.number} leads every other feasible trial by more than {Z_95} paired "
                f"standard errors {where} (closest: trial {closest.trial}, {100 * closest.lead:+.1f} ± "
                f"{100 * closest.standard_error:.1f} points); supernet and fine-tuning noise come on top")
    listed = ", ".join(str(s.trial) for s in ties[:8]) + (f" and {len(ties) - 8} more" if len(ties) > 8 else "")
    command = (f"autoc search --resume {run_dir} --finalists auto" if run_dir is not None
               else "the finalist stage (--finalists auto)")
    which = "them" if len(ties) < AUTO_FINALISTS else f"it and the {AUTO_FINALISTS - 1} closest"
    return (f"estimate noise: {len(ties)} of {len(rows)} other feasible trial(s) within {Z_95} paired standard "
            f"errors of trial {best.number} {where} ({listed}): the estimate does not tell which is better; "
            f"{command} trains {which} fully and chooses")
