import gzip
import itertools

import pytest

from autoc.latency.model import open_host_model
from autoc.space import load_space
from latency_nets import SHARED_DATA, TINY_SPACE_YAML

FBNET_CSV = SHARED_DATA / "fbnet_latency_pixel3_raspi4_pixel2.csv.gz"


@pytest.fixture(scope="session")
def host_model(tmp_path_factory):
    """One host model shared by the tests that only read predictions (measurements are cached)."""
    return open_host_model(tmp_path_factory.mktemp("latency") / "host.json")


@pytest.fixture(scope="session")
def tiny_space(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tiny-latency.yaml"
    path.write_text(TINY_SPACE_YAML)
    return load_space(path)


@pytest.fixture(scope="session")
def fbnet_head(tmp_path_factory):
    """The first 160 rows of the FBNet latency CSV (the full file takes ~30 s to read)."""
    if not FBNET_CSV.is_file():
        pytest.skip(f"shared data {FBNET_CSV} not present")
    path = tmp_path_factory.mktemp("fbnet") / "fbnet-head.csv"
    with gzip.open(FBNET_CSV, "rt") as f:
        path.write_text("".join(itertools.islice(f, 161)))
    return path
