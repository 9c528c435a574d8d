"""The shipped mbv2-imagenet space: MobileNetV2's ImageNet macro structure with resolution searched."""
import torch

from autoc.arch.builder import build_model
from autoc.arch.netspec import build_netspec
from autoc.latency.blocks import network_units
from autoc.space import load_space
from autoc.space.params import search_distributions


def test_its_largest_network_is_mobilenet_v2_at_224():
    space = load_space("mbv2-imagenet")
    largest = build_netspec(space.largest_arch())
    assert space.resolutions == (160, 192, 224) and space.stem.stride == 2
    assert [max(s.widths) for s in space.stages] == [16, 24, 32, 64, 96, 160, 320]
    assert [max(s.depths) for s in space.stages] == [1, 2, 3, 4, 3, 3, 1]
    assert largest.head_resolution == 7 and largest.classifier_in == 1280
    assert {"resolution", "stage3.depth", "stage3.block3.op"} <= set(search_distributions(space))


def test_its_smallest_candidate_runs_at_160_and_has_latency_units():
    space = load_space("mbv2-imagenet")
    small = space.minimal_candidates(num_classes=10)[0]
    assert small.arch.input_size == 160 and small.netspec().head_resolution == 5
    model = build_model(small.netspec(), seed=0).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 160, 160)).shape == (1, 10)
    units = network_units(small.netspec(), small.policy)  # what a profile prices: shapes at 160 px
    assert units[0].key.startswith("stem-r160-") and units[1].key.startswith("ir-r80-")
