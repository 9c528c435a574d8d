"""JSON Schemas of the files autoc reads and writes, shipped as package data, and one-line
accounts of what a schema rejects (``field PATH <what is wrong>``) for messages that add the
file and the fix.

A subschema's ``title``, where given, is how a message names the value it wants
("a time in milliseconds (a number)"); otherwise the message names the JSON type.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Iterable

import jsonschema

DEVICE_PROFILE = "device_profile.schema.json"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "null",
}


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """The schema document in this package's file ``name`` (e.g. ``DEVICE_PROFILE``)."""
    return json.loads(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(name))


def first_problem(name: str, data: Any) -> str | None:
    """``field PATH <what is wrong>`` for the most relevant place where ``data`` breaks schema
    ``name``, with a count of any others; None when it conforms."""
    errors = list(_validator(name).iter_errors(data))
    if not errors:
        return None
    others = len(errors) - 1
    return describe(jsonschema.exceptions.best_match(errors)) + (
        f" (and {others} more problem{'' if others == 1 else 's'})" if others else ""
    )


def field_path(path: Iterable[Any], *, quote: Callable[[str], str] = repr) -> str:
    """``blocks['ir-x']``, ``validation.worst[0].error_pct``: dotted where a key is a plain name,
    other keys bracketed as ``quote`` writes them (``json.dumps`` for JSON-style quotes)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{quote(part)}]"
    return text or "(top level)"


def json_type(value: Any) -> str:
    """How JSON names the type of a parsed value: "a string", "an object", "true/false", ..."""
    if isinstance(value, bool):
        return "true/false"
    for kind, name in ((str, "a string"), ((int, float), "a number"), (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def describe(error: jsonschema.ValidationError) -> str:
    """One line for one schema error, starting with ``field PATH``."""
    where, schema, value, rule = list(error.absolute_path), error.schema, error.instance, error.validator_value
    if error.validator == "required":
        missing = next(key for key in rule if key not in value)
        return f"field {field_path([*where, missing])} is missing"
    name = f"field {field_path(where)}"
    if error.validator == "type":
        types = [rule] if isinstance(rule, str) else rule
        wanted = schema.get("title") or " or ".join(_TYPE_NAMES[t] for t in types)
        return f"{name} must be {wanted}, got {json_type(value)}"
    if error.validator == "additionalProperties" and isinstance(value, dict):
        known = sorted(schema.get("properties", {}))
        return f"{name} has unknown field(s) {sorted(set(value) - set(known))} (known: {known})"
    if error.validator == "minProperties" and isinstance(value, dict) and "properties" in schema:
        return f"{name} is empty; give some of {list(schema['properties'])}"
    if error.validator == "minimum":
        return f"{name} = {value!r} is below the minimum {rule!r}"
    if error.validator == "const":
        return f"{name} = {value!r} must be {rule!r}"
    if error.validator == "enum":
        return f"{name} = {value!r} is not allowed; use one of {rule}"
    return f"{name}: {error.message}"
