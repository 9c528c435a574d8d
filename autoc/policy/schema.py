"""The JSON Schema of policy files (``policy.schema.json``, shipped in the package) and its check.

The schema states the shape and ranges of a policy file; what depends on the architecture
(which layer names exist, which layers are tied) is checked after it, in ``autoc.policy.file``.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

import jsonschema

from autoc.errors import PolicyError
from autoc.schemas import field_path as schema_field_path

SCHEMA_ID = "autoc.policy/2"  # what autoc writes
# what it reads: /1 is /2 without preprocessing
READABLE = ("autoc.policy/1", SCHEMA_ID)
SCHEMA_FILE = "policy.schema.json"
_VERSIONED = re.compile(r"^autoc\.policy/(\d+)$")


@lru_cache(maxsize=1)
def policy_schema() -> dict[str, Any]:
    """The JSON Schema document of ``autoc.policy/2`` (which also admits ``autoc.policy/1``)."""
    return json.loads(resources.files("autoc.schemas").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def validate_policy_document(data: Any, *, source: str) -> None:
    """Raise PolicyError naming the field when ``data`` is not an ``autoc.policy/1`` or ``/2`` document.

    The schema version is checked first, on its own: a file of another version would
    otherwise fail on whatever field changed, which hides the real cause.
    """
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy file holds a JSON object, found {type(data).__name__}")
    _check_version(data.get("schema"), source=source)
    if data["schema"] == READABLE[0] and "preprocessing" in data:  # the schema says so too, less readably
        raise PolicyError(f"{source}: field preprocessing: schema {READABLE[0]!r} has no preprocessing; "
                          f"set schema to {SCHEMA_ID!r} or drop the field")
    validator = jsonschema.Draft202012Validator(policy_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return
    first = jsonschema.exceptions.best_match(errors)
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    raise PolicyError(
        f"{source}: field {field_path(first.absolute_path)}: {_describe(first)}{more}; "
        f"fix that field (the schema is autoc/schemas/{SCHEMA_FILE})"
    )


def _check_version(found: Any, *, source: str) -> None:
    if found in READABLE:
        return
    if found is None:
        raise PolicyError(f"{source}: no 'schema' field; an autoc policy file starts with \"schema\": \"{SCHEMA_ID}\"")
    match = _VERSIONED.match(found) if isinstance(found, str) else None
    if match:
        raise PolicyError(
            f"{source}: schema {found!r} is another version of the policy format; this autoc reads "
            f"{' and '.join(map(repr, READABLE))}: export the policy again with this autoc version (autoc export), "
            "or load it with the autoc version that wrote it"
        )
    raise PolicyError(f"{source}: schema {found!r} is not an autoc policy schema; expected {SCHEMA_ID!r}")


def field_path(path: Iterable[Any]) -> str:
    """``policy["stages.0.0.dw"].keep_ratio``: dotted where a key is a plain name, bracketed (JSON quotes) otherwise."""
    return schema_field_path(path, quote=json.dumps)


def _describe(error: jsonschema.ValidationError) -> str:
    if "propertyNames" in error.absolute_schema_path:
        return f"layer name {error.instance!r} is not a layer name (stem, head, stages.S.B.expand|dw|project|conv)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"unknown key(s) {extra}; allowed: {allowed}"
    return error.message
