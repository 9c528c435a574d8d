"""The shipped note10 profile: Once-for-All's five Note10 tables, covering the ofa-mbv3 space at
every resolution, predicting a network as the sum of the table entries it consists of."""
from dataclasses import replace

import pytest
import yaml

from autoc.candidate import Candidate
from autoc.errors import DeviceError
from autoc.latency.blocks import network_units
from autoc.latency.device import open_latency_model
from autoc.latency.shipped import NOTE10, build_shipped, shipped_path
from autoc.latency.profile import load_profile
from autoc.space import candidate_from_params, load_space, random_sampling_study
from autoc.space.params import search_distributions
from latency_nets import SHARED_DATA

RESOLUTIONS = (160, 176, 192, 208, 224)
LUT_DIR = SHARED_DATA / NOTE10.folder


def candidates_at(resolution: int, count: int, *, seed: int = 0, num_classes: int | None = None) -> list[Candidate]:
    space = load_space("ofa-mbv3")
    study = random_sampling_study(seed=seed)
    out = []
    for _ in range(count):
        params = dict(study.ask(search_distributions(space)).params, resolution=resolution)
        out.append(candidate_from_params(space, params, num_classes=num_classes))
    return out


def ofa_keys(candidate: Candidate) -> list[str]:
    """The OFA table entries a candidate consists of, written from the tables' key format."""
    spec = candidate.netspec()
    r = spec.input_size
    keys = [f"Conv-input:{r}x{r}x3-output:{r // 2}x{r // 2}x{spec.stem.cout}"]
    for block in spec.blocks:
        dw = next(c for c in block.convs if c.depthwise)
        out = block.convs[-1].cout
        r2 = (block.resolution + dw.stride - 1) // dw.stride
        se = int(block.se is not None)
        hs = int(candidate.arch.stage_activation(block.stage) == "hswish")
        keys.append(f"expanded_conv-input:{block.resolution}x{block.resolution}x{block.cin}-output:{r2}x{r2}x{out}"
                    f"-expand:{dw.cout}-kernel:{dw.kernel}-stride:{dw.stride}-idskip:{int(block.residual)}"
                    f"-se:{se}-hs:{hs}")
    h, c = spec.head_resolution, spec.head.cin
    keys += [f"Conv_1-input:{h}x{h}x{c}-output:{h}x{h}x1152", "AvgPool2D-input:{0}x{0}x1152-output:1x1x1152".format(h),
             "Conv_2-input:1x1x1152-output:1x1x1536", "Logits-input:1x1x1536-output:1000"]
    return keys


@pytest.fixture(scope="module")
def note10(tmp_path_factory):
    return open_latency_model("note10", runs_dir=tmp_path_factory.mktemp("runs"), space=load_space("ofa-mbv3"),
                              progress=False)


def test_it_ships_for_ofa_mbv3_with_all_five_resolutions():
    profile = load_profile(shipped_path("note10"))
    assert profile.device == "note10" and profile.source == "ofa-lut"
    assert profile.resolutions == RESOLUTIONS
    assert profile.space == {"name": "ofa-mbv3", "fingerprint": load_space("ofa-mbv3").fingerprint()}
    assert "160_lookup_table.yaml" in profile.validation["source_file"]


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_it_covers_every_block_of_random_candidates_at_each_resolution(resolution):
    table = load_profile(shipped_path("note10")).blocks
    for candidate in candidates_at(resolution, 50, seed=resolution):
        missing = [u.key for u in network_units(candidate.netspec(), candidate.policy) if u.key not in table]
        assert not missing, missing


# 160 px networks share no feature-map size with another resolution's; 176 and 192 share 6 px maps,
# 208 and 224 share 7 px ones, whose blocks take the mean of both tables' times.
EXACT = (160,)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_its_prediction_is_the_sum_of_the_table_entries_a_candidate_consists_of(note10, resolution):
    if not LUT_DIR.is_dir():
        pytest.skip(f"shared data {LUT_DIR} not present")
    lut = yaml.safe_load((LUT_DIR / f"{resolution}_lookup_table.yaml").read_text())
    for candidate in candidates_at(resolution, 3, seed=7):
        expected = sum(lut[key]["mean"] for key in ofa_keys(candidate))
        predicted = note10.predict(candidate.netspec(), candidate.policy)
        assert predicted == pytest.approx(expected, rel=1e-9 if resolution in EXACT else 0.01)


def test_the_shipped_file_is_what_the_tables_give_again():
    if not LUT_DIR.is_dir():
        pytest.skip(f"shared data {LUT_DIR} not present")
    assert build_shipped(NOTE10, data_dir=SHARED_DATA).to_dict() == load_profile(shipped_path("note10")).to_dict()


def test_a_ten_class_candidate_is_priced_with_the_classifier_scaled(note10):
    big, = candidates_at(160, 1, seed=3)
    small, = candidates_at(160, 1, seed=3, num_classes=10)
    saved = note10.predict(big.netspec(), big.policy) - note10.predict(small.netspec(), small.policy)
    lut = yaml.safe_load((LUT_DIR / "160_lookup_table.yaml").read_text()) if LUT_DIR.is_dir() else None
    assert saved > 0
    if lut is not None:
        assert saved == pytest.approx(lut["Logits-input:1x1x1536-output:1000"]["mean"] * 0.99)


def test_a_resolution_outside_the_tables_names_those_it_has(note10):
    candidate = candidates_at(160, 1)[0]
    odd = replace(candidate, arch=replace(candidate.arch, input_size=128))
    with pytest.raises(DeviceError, match=r"input resolutions \[160, 176, 192, 208, 224\], not for the candidate's 128"):
        note10.predict(odd.netspec(), odd.policy)
