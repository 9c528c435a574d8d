"""Finding and reading search-space files: a path, or a bare name looked up in ``./search_spaces/``
and then among the spaces shipped in the package (``autoc/space/spaces/``)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from autoc.errors import SpaceError
from autoc.space.model import SearchSpace
from autoc.space.validate import parse_space

SUFFIXES = (".yaml", ".yml")
LOCAL_DIR = "search_spaces"  # a user's own spaces, under the working directory


def shipped_dir() -> Path:
    """The folder of the spaces shipped with autoc: package data, wherever autoc is installed."""
    # pip installs a wheel unpacked, so the package's data folder is a real directory
    return Path(str(resources.files("autoc.space").joinpath("spaces")))


def space_dirs() -> list[Path]:
    """Where bare names are looked up, first match wins: ./search_spaces (the user's), then the shipped ones."""
    return [Path.cwd() / LOCAL_DIR, shipped_dir()]


def available_spaces() -> list[str]:
    """Names ``load_space`` accepts, from every lookup folder."""
    names = {p.stem for d in space_dirs() if d.is_dir() for p in d.iterdir() if p.suffix in SUFFIXES}
    return sorted(names)


def load_space(path_or_name: str | Path) -> SearchSpace:
    """Load and validate a space from a file path or a bare name such as ``mbv2-cifar``."""
    path = resolve_space(path_or_name)
    return parse_space(_read_yaml(path), source=str(path))


def resolve_space(path_or_name: str | Path) -> Path:
    """The file a path or bare name stands for; SpaceError listing the available names if none."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    text = str(path_or_name)
    looks_like_path = isinstance(path_or_name, Path) or path.suffix in SUFFIXES or "/" in text or "\\" in text
    if looks_like_path:
        raise SpaceError(
            f"{path}: search-space file not found; give an existing .yaml file or one of the names "
            f"{available_spaces()}"
        )
    for folder in space_dirs():
        for suffix in SUFFIXES:
            if (folder / f"{path_or_name}{suffix}").is_file():
                return folder / f"{path_or_name}{suffix}"
    raise SpaceError(
        f"{path_or_name}: no search space of that name in {[str(d) for d in space_dirs()]}; "
        f"available: {available_spaces()} (or give a path to a .yaml file)"
    )


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot read the search-space file ({exc}); check the path and permissions") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
        raise SpaceError(f"{path}: {where}invalid YAML ({problem}); fix the syntax at that place") from None
