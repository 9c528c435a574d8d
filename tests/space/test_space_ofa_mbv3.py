"""The shipped ofa-mbv3 space: Once-for-All's MobileNetV3 space as its Note10 tables cover it."""
import torch

from autoc.arch.builder import build_model
from autoc.arch.netspec import build_netspec
from autoc.space import load_space
from autoc.space.params import search_distributions


def test_it_has_ofas_widths_strides_blocks_and_resolutions():
    space = load_space("ofa-mbv3")
    assert space.resolutions == (160, 176, 192, 208, 224) and space.classes == 1000
    assert space.stem.widths == (24,) and space.stem.stride == 2 and space.activation == "hswish"
    assert [(s.widths, s.stride, s.activation or space.activation, s.se) for s in space.stages] == [
        ((24,), 1, "relu", False), ((32,), 2, "relu", False), ((48,), 2, "relu", True),
        ((96,), 2, "hswish", False), ((136,), 1, "hswish", True), ((192,), 2, "hswish", True),
    ]
    assert space.stages[0].depths == (1,) and space.stages[0].op_names == ("k3_e1",)
    for stage in space.stages[1:]:
        assert stage.depths == (2, 3, 4) and stage.per_block
        assert set(stage.op_names) == {f"k{k}_e{e}" for k in (3, 5, 7) for e in (3, 4, 6)}
    assert space.head.widths == (1152,)
    assert {"resolution", "stage1.depth", "stage5.block3.op"} <= set(search_distributions(space))


def test_its_feature_maps_shrink_to_7_at_224_and_5_at_160():
    space = load_space("ofa-mbv3")
    largest = space.largest_arch()
    assert build_netspec(largest).head_resolution == 7
    small = space.minimal_candidates(num_classes=10)[0]
    assert small.arch.input_size == 160 and small.netspec().head_resolution == 5
    model = build_model(small.netspec(), seed=0).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 160, 160)).shape == (1, 10)
