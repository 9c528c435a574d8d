"""Subcommands of the `autoc` CLI, one module each.

Every module here defines `register(subparsers)`, which adds its parser and sets
`handler=` (a function taking the parsed namespace and returning an exit code) as a
parser default. Modules are discovered, so adding a command never edits a shared file.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil


def register_all(subparsers: argparse._SubParsersAction) -> None:
    """Register every command module of this package (those not starting with _), in name order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(subparsers)
