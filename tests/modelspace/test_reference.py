import textwrap

import pytest
import torch

from autoc.errors import ModelError
from autoc.modelspace import load_model, load_weights, weights_digest


def test_a_torchvision_model_is_built_with_random_weights_and_the_asked_classes():
    model = load_model("torchvision:mobilenet_v3_small", num_classes=7)
    assert not model.training
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)


def test_an_unknown_torchvision_name_suggests_the_close_ones():
    with pytest.raises(ModelError, match="torchvision has no classification model 'resnet19': did you mean resnet18"):
        load_model("torchvision:resnet19")


def test_a_reference_without_a_source_says_how_to_write_one():
    with pytest.raises(ModelError, match="names no source: write torchvision:NAME"):
        load_model("resnet18")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_factories.py").write_text(textwrap.dedent("""
        import torch
        def tiny(num_classes=3):
            return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))
        def fixed():
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        def broken():
            raise ValueError("depth must be even")
        def not_a_model():
            return {"layers": 3}
        NOT_CALLABLE = 3
    """))
    (tmp_path / "badimport.py").write_text("import does_not_exist_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_callable_reference_is_called_with_num_classes_when_it_takes_it(user_module):
    model = load_model("user_factories:tiny", num_classes=5)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 5)
    assert load_model("user_factories:fixed", num_classes=5)(torch.randn(1, 3, 2, 2)).shape == (1, 2)


@pytest.mark.parametrize("reference, message", [
    ("nosuchpackage.models:build", r"cannot import 'nosuchpackage.models' .*ModuleNotFoundError.*: install the package"),
    ("badimport:build", r"cannot import 'badimport' .*does_not_exist_anywhere"),
    ("user_factories:missing", r"'user_factories' has no callable 'missing'"),
    ("user_factories:NOT_CALLABLE", r"'user_factories' has no callable 'NOT_CALLABLE'"),
    ("user_factories:broken", r"calling user_factories:broken\(\) failed \(ValueError: depth must be even\)"),
    ("user_factories:not_a_model", r"user_factories:not_a_model\(\) returned dict, not a torch.nn.Module"),
])
def test_a_callable_that_cannot_build_a_model_is_named_with_the_cause(user_module, reference, message):
    with pytest.raises(ModelError, match=message):
        load_model(reference)


def test_weights_are_loaded_from_a_state_dict_or_a_wrapped_checkpoint(tmp_path):
    source = load_model("torchvision:resnet18", num_classes=4)
    plain, wrapped = tmp_path / "plain.pt", tmp_path / "wrapped.ckpt"
    torch.save(source.state_dict(), plain)
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, wrapped)
    x = torch.randn(1, 3, 32, 32)
    for path in (plain, wrapped):
        torch.manual_seed(1)  # another random init, so equal outputs mean the weights were loaded
        model = load_model("torchvision:resnet18", num_classes=4, weights=path)
        torch.testing.assert_close(model(x), source.eval()(x))
    assert weights_digest(plain) == weights_digest(plain) != weights_digest(wrapped)


def test_weights_of_another_model_name_the_first_mismatched_key(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(load_model("torchvision:resnet18", num_classes=10).state_dict(), path)
    with pytest.raises(ModelError, match=r"'fc.weight' has shape \(10, 512\), the model's is \(4, 512\)"):
        load_model("torchvision:resnet18", num_classes=4, weights=path)
    with pytest.raises(ModelError, match=r"do not match the model: 'features.0.0.weight' is missing"):
        load_weights(load_model("torchvision:mobilenet_v2"), path)


def test_a_missing_or_corrupt_weights_file_says_how_to_save_one(tmp_path):
    model = load_model("torchvision:resnet18", num_classes=4)
    with pytest.raises(ModelError, match="does not exist"):
        load_weights(model, tmp_path / "none.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"cannot read weights file .*corrupt.pt .*torch.save\(model.state_dict\(\)"):
        load_weights(model, tmp_path / "corrupt.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ModelError, match="holds no state dict"):
        load_weights(model, tmp_path / "list.pt")


def test_a_policy_file_breaking_its_schema_names_the_field(tmp_path):
    import json

    from autoc.errors import PolicyError
    from autoc.modelspace import ModelPolicy
    from autoc.modelspace.policy_file import ModelPolicyFile, ModelReference, load_model_policy

    path = tmp_path / "best_policy.json"
    ModelPolicyFile(reference=ModelReference(model="torchvision:resnet18", num_classes=10, input_size=32),
                    policy=ModelPolicy.of(keep={"conv1": 0.5}), device="host", budget_ms=1.0).write(path)
    assert dict(load_model_policy(path).policy.keep) == {"conv1": 0.5}
    data = json.loads(path.read_text())
    data["keep"]["conv1"] = 1.5
    path.write_text(json.dumps(data))
    with pytest.raises(PolicyError, match=r"best_policy.json: field keep.conv1: 1.5 is greater than the maximum of 1: fix the field"):
        load_model_policy(path)


def test_a_version_1_policy_file_still_loads_with_its_mean_and_std(tmp_path):
    import json

    from autoc.modelspace import ModelPolicy
    from autoc.modelspace.policy_file import ModelPolicyFile, ModelReference, load_model_policy

    path = tmp_path / "best_policy.json"
    ModelPolicyFile(reference=ModelReference(model="torchvision:resnet18", num_classes=10, input_size=32),
                    policy=ModelPolicy.of(keep={"conv1": 0.5}), device="host", budget_ms=1.0).write(path)
    data = json.loads(path.read_text())
    assert data["schema"] == "autoc.model-policy/2"
    data.update(schema="autoc.model-policy/1", preprocessing={"input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3})
    path.write_text(json.dumps(data))
    loaded = load_model_policy(path)
    assert (loaded.mean, loaded.std, loaded.preprocessing.input_size) == ((0.5,) * 3, (0.25,) * 3, 32)
    assert dict(loaded.policy.keep) == {"conv1": 0.5}
    import autoc

    assert autoc.load_policy(path).policy == loaded.policy  # the front door reads it too
