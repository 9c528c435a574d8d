"""Every malformed space is a SpaceError naming the file, the key path and the bad value."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from autoc.errors import SpaceError
from autoc.space import load_space, parse_space


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """Mutation setting ``a.b[2].c`` to ``value``."""

    def apply(data: dict) -> None:
        *parents, last = _steps(path)
        node: Any = data
        for step in parents:
            node = node[step]
        node[last] = value

    return apply


def _drop(path: str) -> Callable[[dict], None]:
    def apply(data: dict) -> None:
        *parents, last = _steps(path)
        node: Any = data
        for step in parents:
            node = node[step]
        del node[last]

    return apply


def _steps(path: str) -> list:
    steps: list = []
    for part in path.split("."):
        name, _, index = part.partition("[")
        steps.append(name)
        if index:
            steps.append(int(index.rstrip("]")))
    return steps


CASES = [
    # (mutation, key path in the message, text that must also appear)
    (_set("extra", 1), "extra", "allowed keys"),
    (_set("stem.depth", [1]), "stem.depth", "allowed keys"),
    (_set("stages[1].kernal", [3]), "stages[1].kernal", "allowed keys"),
    (_set("head.depth", [1]), "head.depth", "allowed keys"),
    (_set("compression.keep", [0.5]), "compression.keep", "allowed keys"),
    (_drop("name"), "name", "missing"),
    (_drop("input_size"), "input_size", "missing"),
    (_drop("stages"), "stages", "missing"),
    (_drop("stem.stride"), "stem.stride", "missing"),
    (_drop("stages[0].depth"), "stages[0].depth", "missing"),
    (_drop("stages[1].kernel"), "stages[1].kernel", "missing"),
    (_drop("head.width"), "head.width", "missing"),
    (_set("stages[0].width", []), "stages[0].width", "empty"),
    (_set("compression.keep_ratio", []), "compression.keep_ratio", "empty"),
    (_set("stages", []), "stages", "non-empty"),
    (_set("stages[1].kernel", [3, 3]), "stages[1].kernel", "twice"),
    (_set("stages[2].blocks", ["k3_e3", "k3_e3_g1"]), "stages[2].blocks", "twice"),
    (_set("compression.keep_ratio", [0.5, 0.5]), "compression.keep_ratio", "twice"),
    (_set("stages[1].kernel", [3, 4]), "stages[1].kernel", "4"),
    (_set("stages[1].kernel", [3.0]), "stages[1].kernel", "3.0"),
    (_set("stages[2].blocks", ["k4_e3"]), "stages[2].blocks", "k4_e3"),
    (_set("stages[2].blocks", ["conv3x3"]), "stages[2].blocks", "conv3x3"),
    (_set("stages[2].blocks", ["k3_e0"]), "stages[2].blocks", "k3_e0"),
    (_set("stages[1].stride", 3), "stages[1].stride", "[1, 2]"),
    (_set("stem.stride", 0), "stem.stride", "[1, 2]"),
    (_set("stages[1].width", [16, 0]), "stages[1].width", "0"),
    (_set("stages[1].width", [-8]), "stages[1].width", "-8"),
    (_set("stages[1].width", [16.5]), "stages[1].width", "16.5"),
    (_set("stages[1].depth", [0]), "stages[1].depth", "0"),
    (_set("stages[1].expansion", [0]), "stages[1].expansion", "0"),
    (_set("stem.width", [0]), "stem.width", "0"),
    (_set("head.width", [-1]), "head.width", "-1"),
    (_set("input_size", True), "input_size", "True"),
    (_set("compression.keep_ratio", [0.0]), "compression.keep_ratio", "(0, 1]"),
    (_set("compression.keep_ratio", [1.5]), "compression.keep_ratio", "1.5"),
    (_set("compression.precision", ["fp16"]), "compression.precision", "['fp32', 'int8']"),
    (_set("compression.weight_bits", [1]), "compression.weight_bits", "1"),
    (_set("compression.weight_bits", [9]), "compression.weight_bits", "9"),
    (_set("activation", "swish"), "activation", "['relu6', 'relu', 'hswish']"),
    (_set("expand_at_e1", "yes"), "expand_at_e1", "true or false"),
    (_set("stages[1].per_block", 1), "stages[1].per_block", "true or false"),
    (_set("stages[2].kernel", [3]), "stages[2].kernel", "blocks"),
    (_set("stages[2].width", [24, 27]), "stages[2].width", "divisible by groups 2"),
    (_set("stages[1].width", [16, 21]), "stages[1].width", "divisible by groups 2"),
    (_set("stages[0]", [1, 2]), "stages[0]", "mapping"),
    (_set("name", ""), "name", "non-empty"),
]


@pytest.mark.parametrize(("mutate", "key", "detail"), CASES, ids=[f"{c[1]}:{c[2]}" for c in CASES])
def test_bad_value_names_file_key_and_value(small_space, write_space, mutate, key, detail):
    mutate(small_space)
    path = write_space(small_space)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert str(path) in message
    assert f": {key}: " in message
    assert detail in message
    assert "\n" not in message


def test_small_space_is_valid(small_space, write_space):
    space = load_space(write_space(small_space))
    assert space.name == "small"
    assert [st.op_names for st in space.stages][2] == ("k3_e1_g2", "k3_e3", "skip")


def test_top_level_must_be_a_mapping(write_space):
    path = write_space("- just\n- a list\n")
    with pytest.raises(SpaceError, match="top level must be a mapping"):
        load_space(path)


def test_empty_file_is_rejected(write_space):
    path = write_space("")
    with pytest.raises(SpaceError, match=f"{path}: .*mapping"):
        load_space(path)


def test_bad_yaml_names_the_line(write_space):
    path = write_space("name: x\nstem: {width: [8, stride: 1}\nstages: []\n")
    with pytest.raises(SpaceError, match=rf"{path}: line 2, column \d+: invalid YAML"):
        load_space(path)


def test_key_given_twice_is_rejected(write_space):
    path = write_space("name: x\ninput_size: 32\nname: y\n")
    with pytest.raises(SpaceError, match=rf"{path}: line 3, .*'name' is given twice"):
        load_space(path)


def test_scalar_counts_as_one_choice(small_space):
    small_space["stages"][0]["depth"] = 1
    assert parse_space(small_space).stages[0].depths == (1,)


def test_defaults(small_space):
    del small_space["head"], small_space["compression"]
    space = parse_space(small_space)
    assert (space.in_channels, space.classes, space.expand_at_e1) == (3, 10, False)
    assert not space.head.present
    assert space.compression.keep_ratios == (1.0,) and space.compression.precisions == ("fp32",)


def test_kernel_expansion_form_expands_to_ops(small_space):
    small_space["stages"][1].update(groups=[1, 2], skip=True)
    ops = parse_space(small_space).stages[1].op_names
    assert ops == ("k3_e3", "k3_e3_g2", "k3_e6", "k3_e6_g2", "k5_e3", "k5_e3_g2", "k5_e6", "k5_e6_g2", "skip")
