"""Per-stage ``activation`` and ``se`` keys of the space format."""
import optuna
import pytest

from autoc.errors import SpaceError
from autoc.space import load_space, parse_space
from autoc.space.assemble import assemble
from autoc.space.params import parameter_plan
from helpers import SE_SPACE

# Fingerprints of the shipped spaces before per-stage keys existed: adding the keys must not
# orphan existing studies, caches or policy files.
SHIPPED_FINGERPRINTS = {
    "mbv2-cifar": "59483ec9d0831dada1a06ff12949c792ab49b11eb7bee64229eeef3ddb6992ba",
    "fbnet-cifar": "089891805b8ac6a4e6333e8157220db60392b8d9b23f0252c8be0d381734078b",
}


@pytest.mark.parametrize("name", sorted(SHIPPED_FINGERPRINTS))
def test_shipped_fingerprints_are_unchanged(name):
    assert load_space(name).fingerprint() == SHIPPED_FINGERPRINTS[name]


def test_the_test_space_loads_and_round_trips():
    space = load_space(SE_SPACE)
    assert space.activation == "relu"
    assert [(s.activation, s.se, s.se_ratio) for s in space.stages] == [
        (None, True, 0.25), ("hswish", True, 0.25), ("hswish", True, 0.5),
    ]
    again = parse_space(space.to_dict())
    assert again == space and again.fingerprint() == space.fingerprint()


def test_a_stage_naming_the_spaces_activation_is_the_same_space(small_space):
    plain = parse_space(small_space)
    small_space["stages"][0]["activation"] = small_space["activation"]
    named = parse_space(small_space)
    assert named == plain and named.fingerprint() == plain.fingerprint()
    small_space["stages"][0]["activation"] = "hswish"
    assert parse_space(small_space).fingerprint() != plain.fingerprint()


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("activation", "swish", "stages[1].activation: 'swish' is not allowed; use one of ['relu6', 'relu', 'hswish']"),
        ("se", "yes", "stages[1].se: 'yes' is not allowed; use true or false"),
        ("se_ratio", 0.5, "stages[1].se_ratio: se_ratio needs 'se: true'"),
    ],
)
def test_bad_stage_keys_are_one_line_errors(small_space, key, value, message):
    small_space["stages"][1][key] = value
    with pytest.raises(SpaceError) as info:
        parse_space(small_space, source="s.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_candidates_and_the_largest_arch_carry_the_stage_keys():
    space = load_space(SE_SPACE)
    largest = space.largest_arch()
    assert [(s.activation, s.se, s.se_ratio) for s in largest.stages] == [
        (None, True, 0.25), ("hswish", True, 0.25), ("hswish", True, 0.5),
    ]
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    values = {p.name: trial.suggest_categorical(p.name, list(p.choices)) for p in parameter_plan(space)}
    candidate = assemble(space, values)
    spec = candidate.netspec()
    assert {b.activation for b in spec.blocks if b.stage > 0} == {"hswish"}
    assert all(b.se is not None for b in spec.blocks if any(c.depthwise for c in b.convs))
