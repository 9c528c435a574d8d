"""Tiny spaces (16x16 inputs) so supernet tests train in seconds.

A plain module, not a conftest.py: other test folders import their conftest by name, and a
second module called ``conftest`` would shadow theirs. Test modules import these fixtures.
"""
from __future__ import annotations

import pytest
import torch

from autoc.data.datasets import load_dataset
from autoc.space import parse_space

MBV2_LIKE = {
    "name": "tiny-mbv2",
    "input_size": 16,
    "stem": {"width": [8, 16], "stride": 1},
    "stages": [
        {"depth": [1], "width": [8, 16], "stride": 1, "kernel": [3, 5], "expansion": [1]},
        {"depth": [1, 2], "width": [16, 24], "stride": 2, "kernel": [3, 5, 7], "expansion": [3, 6]},
        {"depth": [1, 2], "width": [24, 32], "stride": 2, "kernel": [3, 5], "expansion": [3, 6]},
    ],
    "head": {"width": [0, 64]},
    "compression": {"keep_ratio": [0.5, 1.0], "precision": ["fp32", "int8"], "weight_bits": [8, 4]},
}

# Skip ops and grouped 1x1 convs, as in the FBNet space.
FBNET_LIKE = {
    "name": "tiny-fbnet",
    "input_size": 16,
    "activation": "relu",
    "expand_at_e1": True,
    "stem": {"width": [16], "stride": 1},
    "stages": [
        {"depth": [2], "width": [16], "stride": 1, "blocks": ["k3_e1", "k3_e1_g2", "k5_e3", "skip"]},
        {"depth": [2], "width": [24], "stride": 2, "blocks": ["k3_e1_g2", "k5_e6", "skip"]},
    ],
    "head": {"width": [32]},
}


@pytest.fixture(scope="session")
def tiny_space():
    return parse_space(MBV2_LIKE, source="tiny-mbv2")


@pytest.fixture(scope="session")
def se_space():
    """Per-stage hswish and squeeze-excite (tests/space/se-hswish-tiny.yaml)."""
    from autoc.space import load_space
    from helpers import SE_SPACE

    return load_space(SE_SPACE)


@pytest.fixture(scope="session")
def fbnet_space():
    return parse_space(FBNET_LIKE, source="tiny-fbnet")


@pytest.fixture(scope="session")
def digits16():
    return load_dataset("digits", input_size=16, max_train=400, max_val=200)


@pytest.fixture(autouse=True)
def _one_thread():  # small convs on 2 shared cores: extra threads only add hand-off time
    saved, _ = torch.get_num_threads(), torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def trained_subnets(monkeypatch):
    """The sub-networks the supernet runs forward, in order: a spy on the real forward."""
    from autoc.supernet.elastic import Supernet

    trained = []
    forward = Supernet.forward

    def recording(self, x, *, subnet):
        trained.append(subnet)
        return forward(self, x, subnet=subnet)

    monkeypatch.setattr(Supernet, "forward", recording)
    return trained
