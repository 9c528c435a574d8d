"""Seeded class-stratified index selection: train/val splits and size-capped subsets.

Works on label arrays only, so callers choose which files to decode before decoding any.
Counts per class follow each class's share of the whole, rounded by largest remainder
(ties broken by the seeded generator), so a balanced set stays exactly balanced.
"""
from __future__ import annotations

import numpy as np


def stratified_subset(labels: np.ndarray, size: int, *, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``size`` items drawn per class in proportion; all items if fewer."""
    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    chosen, _ = _draw_per_class(labels, size, rng=rng)
    return chosen


def stratified_split(
    labels: np.ndarray, fraction: float, *, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(rest, picked): sorted indices, ``picked`` holding round(fraction * N) items in proportion."""
    labels = np.asarray(labels)
    picked, rest = _draw_per_class(labels, int(round(fraction * len(labels))), rng=rng)
    return rest, picked


def _draw_per_class(labels: np.ndarray, size: int, *, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    classes, counts = np.unique(labels, return_counts=True)
    quotas = _allocate(counts, size, rng=rng)
    picked, rest = [], []
    for cls, quota in zip(classes, quotas):
        members = rng.permutation(np.flatnonzero(labels == cls))
        picked.append(members[:quota])
        rest.append(members[quota:])
    return np.sort(np.concatenate(picked)), np.sort(np.concatenate(rest))


def _allocate(counts: np.ndarray, total: int, *, rng: np.random.Generator) -> np.ndarray:
    """Integer quotas summing to ``total``, proportional to ``counts`` (exact integer arithmetic)."""
    whole = int(counts.sum())
    scaled = counts.astype(np.int64) * total
    quotas = scaled // whole
    remainders = scaled % whole
    missing = total - int(quotas.sum())
    # Largest remainder first; the random key only orders equal remainders.
    order = np.lexsort((rng.random(len(counts)), -remainders))
    quotas[order[:missing]] += 1
    return quotas
