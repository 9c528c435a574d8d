"""Argument types for numeric flags: a count or duration out of range is refused while parsing,
in one line naming the flag (argparse adds it) and a valid example, before any work starts.
(The leading underscore keeps this module out of the discovered subcommands.)"""
from __future__ import annotations

import argparse
import math
from typing import Callable


def count(minimum: int, example: int) -> Callable[[str], int]:
    """A whole number >= ``minimum``: steps, trials, images, workers, threads, seeds."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"takes a whole number >= {minimum}, e.g. {example}; not {text!r}")
        return value

    return parse


def amount(example: str, *, zero: bool = False) -> Callable[[str], float]:
    """A finite number > 0 (>= 0 with ``zero``): budgets, durations, learning rates, shares.
    inf and nan are refused: a budget of inf is no budget, and nan compares false to everything."""
    bound = ">= 0" if zero else "> 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"takes a finite number {bound}, e.g. {example}; not {text!r}")
        return value

    return parse
