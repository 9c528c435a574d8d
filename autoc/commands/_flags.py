"""Between a command's flags and the library's option names: the library names Python fields
(dotted inside a group, e.g. ``workers.count``), the command line shows its flags (--workers).
A command whose flags store into option fields (``dest`` = the field's path) sets
``option_flags=option_flags(parser)`` as a parser default; the CLI then rewrites the fields an
error names into those flags."""
from __future__ import annotations

import argparse
import re
from typing import Any, Mapping

# Flags that steer the command rather than set an option.
COMMAND_DESTS = ("help", "resume", "config")


def option_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``{field path: flag}`` of ``parser``'s optional arguments, e.g. {"workers.count": "--workers"}."""
    return {action.dest: action.option_strings[-1] for action in parser._actions
            if action.option_strings and action.dest not in COMMAND_DESTS}


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The option flags given on the command line (those left out are absent from ``args``), as
    nested options: {"workers.count": 2} becomes {"workers": {"count": 2}}."""
    nested: dict[str, Any] = {}
    for path in getattr(args, "option_flags", {}):
        if not hasattr(args, path):
            continue
        *groups, name = path.split(".")
        target = nested
        for group in groups:
            target = target.setdefault(group, {})
        target[name] = getattr(args, path)
    return nested


def with_flags(message: str, fields: tuple[str, ...], flags: Mapping[str, str]) -> str:
    """``message`` with each of ``fields`` that has a flag written as that flag (not inside a word,
    a dotted name or a path: a folder named like a field stays as it is)."""
    for field in sorted((f for f in fields if f in flags), key=len, reverse=True):
        message = re.sub(rf"(?<![\w.\-/]){re.escape(field)}(?![\w\-/])", flags[field], message)
    return message
