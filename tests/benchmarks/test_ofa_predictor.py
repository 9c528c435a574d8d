"""The OFA-style predictor of benchmarks.latency.ofa_predictor: which table entries it sums for a subnet,
and that autoc's note10 prediction matches it where one table alone prices a subnet (160 px)."""
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the benchmarks run from the checkout; they are not installed
    sys.path.insert(0, str(REPO))

from benchmarks.latency import ofa_predictor as op  # noqa: E402

LUT_DIR = REPO.parent / "shared" / "data" / "ofa-note10-lut"


def test_a_subnet_sums_stem_first_block_its_depth_of_blocks_and_four_head_entries():
    spec = {"r": [176], "d": [2, 3, 4, 2, 3], "ks": [3] * 20, "e": [4] * 20}
    seen: list[str] = []

    class Counting(defaultdict):
        def __missing__(self, key):
            seen.append(key)
            return 1.0

    assert op.ofa_latency({176: Counting()}, spec) == 1 + 1 + 14 + 4
    assert seen[0] == "Conv-input:176x176x3-output:88x88x24"
    assert seen[2] == "expanded_conv-input:88x88x24-output:44x44x32-expand:96-kernel:3-stride:2-idskip:0-se:0-hs:0"
    # 176 px: 88 -> 44 -> 22 -> 11 -> 11 -> 6 (OFA rounds odd maps up at stride 2)
    assert "expanded_conv-input:11x11x136-output:6x6x192-expand:544-kernel:3-stride:2-idskip:0-se:1-hs:1" in seen
    assert seen[-4:] == ["Conv_1-input:6x6x192-output:6x6x1152", "AvgPool2D-input:6x6x1152-output:1x1x1152",
                         "Conv_2-input:1x1x1152-output:1x1x1536", "Logits-input:1x1x1536-output:1000"]


def test_autoc_parameters_and_ofa_subnet_descriptions_translate_both_ways():
    spec = {"r": [208], "d": [4, 2, 3, 4, 2], "ks": [3, 5, 7, 3] * 5, "e": [6, 4, 3, 3] * 5}
    assert op.ofa_spec(op.autoc_params(spec)) == spec


@pytest.mark.skipif(not LUT_DIR.is_dir(), reason=f"shared data {LUT_DIR} not present")
def test_autoc_predicts_the_ofa_sum_and_every_key_of_the_space_is_in_the_tables(tmp_path):
    tables = op.read_tables(LUT_DIR)
    for r in op.RESOLUTIONS:
        missing = [key for _, choices in op.block_choices(r) for _, key in choices if key not in tables[r]]
        assert not missing, missing
    from autoc.latency.device import open_latency_model
    from autoc.space import candidate_from_params, load_space
    space = load_space(op.SPACE)
    model = open_latency_model("note10", runs_dir=tmp_path, space=space, progress=False)
    for pick in (min, max):
        spec = op.extreme(tables, 160, pick)
        candidate = candidate_from_params(space, op.autoc_params(spec), num_classes=op.CLASSES)
        assert model.predict(candidate.netspec(), candidate.policy) == pytest.approx(op.ofa_latency(tables, spec),
                                                                                   rel=1e-9)
