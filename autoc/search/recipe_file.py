"""Search options from a YAML recipe file: SearchOptions field names, groups as mappings::

    budget_ms: 20
    trials: 60
    supernet: {steps: 150, lr: 0.05}
    finalists: {count: 3}
    workers: {count: 2}

Read and checked whole before anything runs: an unknown key, a wrong type or bad YAML is one
OptionError naming the file and the key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autoc.errors import OptionError
from autoc.search.options import SearchOptions, budget_list

# Stands in for a budget the file leaves to the command line, so that the rest can be checked.
_SOME_BUDGET_MS = 1.0


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The options ``path`` sets, as ``SearchOptions.from_dict`` reads them (checked)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OptionError(f"cannot read recipe file {path}: {exc.strerror or exc}; give the path of a YAML file") from None
    except UnicodeDecodeError:
        raise OptionError(f"recipe file {path} is not UTF-8 text; give a YAML file of search options") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise OptionError(f"recipe file {path} is not valid YAML{where} ({problem}); fix the file, e.g. "
                          "'budget_ms: 20' one option a line") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise OptionError(f"recipe file {path} must be a mapping of option names to values (e.g. 'trials: 60'), "
                          f"not a {type(values).__name__}")
    try:
        SearchOptions.from_dict(budget_list({"budget_ms": _SOME_BUDGET_MS, **values}) if "budget_ms" in values
                                else budget_list({**values, "budget_ms": values.get("budgets_ms") or _SOME_BUDGET_MS}))
    except OptionError as error:
        # the file's own key names, not the command's flags: the fix is in the file
        raise OptionError(f"recipe file {path}: {error}") from None
    return values
