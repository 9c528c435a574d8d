import pytest

from autoc.arch.config import ArchConfig, BlockOp, StageConfig
from autoc.arch.netspec import build_netspec
from autoc.arch.policy import CompressionPolicy
from autoc.errors import DeviceError
from autoc.latency.model import LookupTableLatencyModel
from autoc.latency.ofa_lut import ofa_profile, read_ofa_lut
from autoc.space import load_space
from latency_nets import SHARED_DATA

NOTE10 = SHARED_DATA / "ofa-note10-lut" / "160_lookup_table.yaml"

# An OFA-format table covering the space below (input 32, relu, one strided stage).
LUT = """\
Conv-input:32x32x3-output:16x16x16: {count: 100, mean: 0.20, std: 0.01}
expanded_conv-input:16x16x16-output:8x8x24-expand:48-kernel:3-stride:2-idskip:0-se:0-hs:0: {count: 100, mean: 0.30, std: 0.01}
expanded_conv-input:16x16x16-output:8x8x24-expand:48-kernel:5-stride:2-idskip:0-se:0-hs:0: {count: 100, mean: 0.40, std: 0.01}
expanded_conv-input:16x16x16-output:8x8x24-expand:48-kernel:3-stride:2-idskip:0-se:1-hs:1: {count: 100, mean: 0.50, std: 0.01}
Conv_1-input:8x8x24-output:8x8x64: {count: 100, mean: 0.05, std: 0.01}
AvgPool2D-input:8x8x64-output:1x1x64: {count: 100, mean: 0.01, std: 0.001}
Conv_2-input:1x1x64-output:1x1x128: {count: 100, mean: 0.02, std: 0.001}
Logits-input:1x1x128-output:10: {count: 100, mean: 0.02, std: 0.001}
"""

SPACE = """\
name: ofa-tiny
input_size: 32
classes: 10
activation: relu
stem: {width: [16], stride: 2}
stages:
  - {depth: [1], width: [24], stride: 2, kernel: [3, 5], expansion: [3], per_block: true}
head: {width: [64]}
compression: {keep_ratio: [1.0], precision: [fp32, int8], weight_bits: [8]}
"""


@pytest.fixture()
def covered(tmp_path):
    (tmp_path / "lut.yaml").write_text(LUT)
    (tmp_path / "space.yaml").write_text(SPACE)
    return tmp_path / "lut.yaml", load_space(tmp_path / "space.yaml")


def test_covered_space_becomes_a_profile_that_predicts(covered):
    lut, space = covered
    profile = ofa_profile(lut, device="note10", space=space)
    assert profile.source == "ofa-lut" and profile.identity.precisions == ("fp32",)
    model = LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)
    arch = ArchConfig(32, 3, 10, 16, 2, (StageConfig(24, 2, (BlockOp(5, 3),)),), 64, activation="relu")
    # stem + k5 block + head (Conv_1 + pool + Conv_2 + logits); the se/hs entry is not used
    assert model.predict(build_netspec(arch), CompressionPolicy()) == pytest.approx(0.20 + 0.40 + 0.10)


def test_se_hswish_entries_predict_autocs_se_hswish_blocks(covered):
    lut, space = covered
    model = LookupTableLatencyModel(ofa_profile(lut, device="note10", space=space), profile_path=None,
                                    measure_missing=False)
    stage = StageConfig(24, 2, (BlockOp(3, 3),), activation="hswish", se=True)
    arch = ArchConfig(32, 3, 10, 16, 2, (stage,), 64, activation="relu")
    assert model.predict(build_netspec(arch), CompressionPolicy()) == pytest.approx(0.20 + 0.50 + 0.10)


def test_real_note10_table_parses_and_refuses_an_uncovered_space():
    if not NOTE10.is_file():
        pytest.skip(f"shared data {NOTE10} not present")
    table, skipped = read_ofa_lut(NOTE10)
    assert skipped == 0  # squeeze-excite / h-swish blocks map to autoc's se/hswish blocks
    assert "ir-r10-c136-k1s1o408g1-k3s1o408gdw-k1s1o136g1lin-se104-res1-hswish-fp32" in table
    assert "ir-r40-c32-k1s1o128g1-k3s1o128gdw-k1s1o32g1lin-res1-relu-fp32" in table
    assert table["stem-r160-c3-k3s2o24g1-relu-fp32"] == pytest.approx(0.495562248995984)
    with pytest.raises(DeviceError, match=r"does not cover space 'mbv2-cifar'.*missing, e\.g\. stem \(stem-r32"):
        ofa_profile(NOTE10, device="note10", space=load_space("mbv2-cifar"))


def test_malformed_tables(tmp_path, covered):
    _, space = covered
    bad = tmp_path / "bad.yaml"
    bad.write_text("Conv-input:32x32x3-output:16x16x16: {count: 1, std: 0.1}\n")
    with pytest.raises(DeviceError, match=r"bad\.yaml: entry .* has no numeric 'mean'"):
        ofa_profile(bad, device="note10", space=space)
    bad.write_text("[1, 2")
    with pytest.raises(DeviceError, match="cannot read OFA lookup table"):
        read_ofa_lut(bad)


def test_several_tables_make_one_profile_and_a_shape_both_time_takes_the_mean(covered, tmp_path):
    lut, space = covered
    again = tmp_path / "again.yaml"
    again.write_text(LUT.replace("mean: 0.20", "mean: 0.30"))
    profile = ofa_profile([lut, again], device="note10", space=space)
    assert profile.blocks["stem-r32-c3-k3s2o16g1-relu-fp32"] == pytest.approx(0.25)
    assert profile.blocks["stem-r32-c3-k3s2o16g1-hswish-fp32"] == pytest.approx(0.25)  # OFA's stem is h-swish
    assert profile.validation["source_file"] == "lut.yaml, again.yaml" and profile.validation["resolutions"] == [32]
