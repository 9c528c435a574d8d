"""Reference models of a study (e.g. the MobileNetV2 width family), read from runs/<study>/baselines.json.

Format ``autoc.baselines/1``: ``{"schema": ..., "baselines": [{"name", "accuracy", "latency_ms",
"size_bytes"}, ...]}``. Another command writes it; the report only reads and draws it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoc.errors import StorageError

SCHEMA = "autoc.baselines/1"
FILENAME = "baselines.json"
_FIELDS = {"name": str, "accuracy": float, "latency_ms": float, "size_bytes": int}


@dataclass(frozen=True)
class Baseline:
    """A reference network the report plots beside the search's trials."""

    name: str
    accuracy: float
    latency_ms: float
    size_bytes: int


def load_baselines(path: Path) -> list[Baseline]:
    """The baselines in ``path``; none when the file does not exist (baselines are optional)."""
    if not path.is_file():
        return []
    fix = f"re-create it (it holds {{'schema': {SCHEMA!r}, 'baselines': [...]}}) or delete it"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StorageError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"cannot read {path} ({exc}); {fix}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise StorageError(f"{path} has schema {found!r}, this autoc reads {SCHEMA!r}; {fix}")
    entries = data.get("baselines")
    if not isinstance(entries, list):
        raise StorageError(f"{path}: 'baselines' must be a list of objects; {fix}")
    return [_parse_entry(entry, where=f"{path}: baselines[{i}]", fix=fix) for i, entry in enumerate(entries)]


def _parse_entry(entry: Any, *, where: str, fix: str) -> Baseline:
    if not isinstance(entry, dict):
        raise StorageError(f"{where} is not an object; {fix}")
    missing = sorted(set(_FIELDS) - set(entry))
    if missing:
        raise StorageError(f"{where} lacks {', '.join(missing)}; each baseline needs {', '.join(_FIELDS)}")
    values = {}
    for name, kind in _FIELDS.items():
        value = entry[name]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is str and not isinstance(value, str):
            raise StorageError(f"{where}.name must be a string, got {value!r}")
        if kind is not str and not (numeric and math.isfinite(value) and value >= 0):
            raise StorageError(f"{where}.{name} must be a non-negative number, got {value!r}; {fix}")
        values[name] = kind(value)
    return Baseline(**values)
