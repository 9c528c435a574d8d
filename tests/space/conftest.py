"""Shared fixtures for the search-space tests: a small valid space and a writer for YAML files."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest
import yaml

SMALL_SPACE: dict[str, Any] = {
    "name": "small",
    "input_size": 32,
    "activation": "relu6",
    "stem": {"width": [8, 16], "stride": 1},
    "stages": [
        {"depth": [1], "width": [8, 16], "stride": 1, "kernel": [3], "expansion": [1], "per_block": True},
        {"depth": [1, 2], "width": [16, 24], "stride": 2, "kernel": [3, 5], "expansion": [3, 6], "per_block": True},
        {"depth": [2], "width": [24, 32], "stride": 1, "blocks": ["k3_e1_g2", "k3_e3", "skip"], "per_block": False},
    ],
    "head": {"width": [0, 64]},
    "compression": {"keep_ratio": [0.5, 1.0], "precision": ["fp32", "int8"], "weight_bits": [8, 4]},
}


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def small_space() -> dict[str, Any]:
    """A fresh, mutable copy of a small valid space (pruning, grouped ops, shared stage op, optional head)."""
    return copy.deepcopy(SMALL_SPACE)


@pytest.fixture
def write_space(tmp_path: Path) -> Callable[..., Path]:
    def write(data: Any, name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def get_space() -> Callable[[str], Any]:
    """Name -> SearchSpace: the shipped spaces by name, and ``small`` for SMALL_SPACE."""
    from autoc.space import load_space, parse_space

    def get(name: str) -> Any:
        return parse_space(copy.deepcopy(SMALL_SPACE), source="small") if name == "small" else load_space(name)

    return get
