"""Every public (non-underscore) top-level function and class under autoc/ has a docstring."""
from __future__ import annotations

import ast
from pathlib import Path

import autoc

PACKAGE = Path(autoc.__file__).parent


def undocumented() -> list[str]:
    """``path:line name`` of each public top-level definition without a docstring."""
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    and not node.name.startswith("_") and not ast.get_docstring(node)):
                missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    return missing


def test_public_definitions_have_docstrings():
    missing = undocumented()
    assert not missing, "public definitions without a docstring (say what each is or does):\n" + "\n".join(missing)
