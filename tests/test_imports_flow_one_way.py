"""autoc's packages import one way: no package imports one that imports it back, directly or
round a longer loop. Every import counts, at any depth (inside functions and TYPE_CHECKING
blocks too), relative ones resolved, because a deferred import still ties the two packages."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import autoc

AUTOC = Path(autoc.__file__).resolve().parent

Edges = dict[str, dict[str, set[str]]]  # importing package -> imported package -> importing files


def _unit(module: str, top: str) -> str | None:
    """The package (or top-level module) of ``top`` that dotted ``module`` lies in; None for
    the root package itself, which is the front door (it re-exports, and ``import autoc`` reads
    its path or version), and for modules outside ``top``."""
    parts = module.split(".")
    return parts[1] if parts[0] == top and len(parts) > 1 else None


def _imported_modules(tree: ast.AST, *, package: str, top: str, root: Path) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # ``from autoc import space`` imports the subpackage ``autoc.space``.
            for alias in node.names:
                path = root.parent.joinpath(*module.split("."), alias.name)
                if path.is_dir() or path.with_suffix(".py").is_file():
                    found.add(f"{module}.{alias.name}")
    return {m for m in found if m.split(".")[0] == top}


def package_imports(root: Path) -> Edges:
    """Which package imports which, with the files doing it, for the package folder ``root``."""
    top = root.name
    edges: Edges = defaultdict(lambda: defaultdict(set))
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        package = ".".join(relative.parts[:-1])
        source = _unit(package if path.name == "__init__.py" else ".".join(relative.parts), top)
        if source is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for module in _imported_modules(tree, package=package, top=top, root=root):
            target = _unit(module, top)
            if target is not None and target != source:
                edges[source][target].add(path.relative_to(root.parent).as_posix())
    return edges


def _reaches(edges: Edges, start: str, goal: str) -> bool:
    seen, stack = set(), [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(edges.get(node, {}))
    return False


def imports_back(edges: Edges) -> list[str]:
    """One line per import of a package that leads back to the importer: ``a -> b (files)``."""
    return [
        f"{source} -> {target} ({', '.join(sorted(files))})"
        for source, targets in sorted(edges.items())
        for target, files in sorted(targets.items())
        if _reaches(edges, target, source)
    ]


def test_no_package_of_autoc_imports_one_that_imports_it_back():
    lines = imports_back(package_imports(AUTOC))
    assert not lines, (
        "packages must import one way (a package never imports one that imports it back), but these "
        "imports close a loop:\n  " + "\n  ".join(lines) + "\nmove the code both sides need into a "
        "package below both (as autoc.files, autoc.data, autoc.training, autoc.onnx and autoc.policy are)"
    )


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_loop_closed_by_a_relative_import_inside_a_function_is_named_with_its_files(tmp_path):
    root = _write_package(tmp_path, {
        "__init__.py": "from pkg.a import x\n",
        "a/__init__.py": "",
        "a/x.py": "from pkg.b.y import thing\n",
        "b/__init__.py": "",
        "b/y.py": "from pkg import c\n",
        "c.py": "def late():\n    from .a import x\n",
        "low.py": "",
    })

    lines = imports_back(package_imports(root))

    assert lines == ["a -> b (pkg/a/x.py)", "b -> c (pkg/b/y.py)", "c -> a (pkg/c.py)"]


def test_imports_that_only_go_down_pass(tmp_path):
    root = _write_package(tmp_path, {
        "__init__.py": "from pkg.top.z import run\n",
        "top/__init__.py": "", "top/z.py": "from pkg.mid import y\nimport pkg.low\n",
        "mid/__init__.py": "from .y import f\n", "mid/y.py": "from ..low import g\n",
        "low.py": "import pkg\n",
    })

    edges = package_imports(root)

    assert {s: set(t) for s, t in edges.items()} == {"top": {"mid", "low"}, "mid": {"low"}}
    assert imports_back(edges) == []
