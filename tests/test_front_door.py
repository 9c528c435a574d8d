"""The front door: `import autoc` names every entry point, loads them on first use, and reads either
kind of policy file."""
import subprocess
import sys

import pytest

import autoc


@pytest.mark.parametrize("name", autoc.__all__)
def test_every_exported_name_resolves_and_is_documented(name):
    value = getattr(autoc, name)
    assert value is not None and (name == "__version__" or value.__doc__)


def test_importing_autoc_loads_no_torch_until_an_entry_point_is_used():
    probe = "import sys, autoc; assert 'torch' not in sys.modules; autoc.SearchOptions; assert 'torch' in sys.modules"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'run_serach'"):
        autoc.run_serach  # noqa: B018


def test_load_policy_reads_a_compress_policy_and_a_search_policy(tmp_path):
    from autoc.modelspace import ModelPolicy
    from autoc.modelspace.policy_file import ModelPolicyFile, ModelReference

    path = tmp_path / "best_policy.json"
    ModelPolicyFile(reference=ModelReference(model="torchvision:resnet18", num_classes=10, input_size=32),
                    policy=ModelPolicy.of(keep={"conv1": 0.5}), device="host", budget_ms=1.0).write(path)
    loaded = autoc.load_policy(path)
    assert isinstance(loaded, autoc.ModelPolicyFile) and dict(loaded.policy.keep) == {"conv1": 0.5}
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(autoc.PolicyError):
        autoc.load_policy(tmp_path / "bad.json")  # the search-policy reader names what is missing
