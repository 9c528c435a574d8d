"""What `autoc export` and `autoc compress` say when a file they wrote is not the model the search
scored (autoc.onnx.parity), and the exit code that follows from --allow-drift.
(The leading underscore keeps this module out of the discovered subcommands.)"""
from __future__ import annotations

import sys
from typing import Sequence


def report_drift(command: str, problems: Sequence[str], *, allowed: bool, refusal: str) -> int:
    """Print each problem (even when allowed: the user should know what they accepted); when there
    are problems and they are not allowed, the closing line ``refusal`` and 1; else 0."""
    for problem in problems:
        print(f"autoc {command}: {problem}", file=sys.stderr)
    if problems and not allowed:
        print(f"autoc {command}: {refusal}", file=sys.stderr)
        return 1
    return 0
