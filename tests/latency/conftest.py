import pytest

from autoc.latency.model import open_host_model


@pytest.fixture(scope="session")
def host_model(tmp_path_factory):
    """One host model shared by the tests that only read predictions (measurements are cached)."""
    return open_host_model(tmp_path_factory.mktemp("latency") / "host.json")
