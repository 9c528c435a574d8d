"""The whole-network correction: scale x unit sum + intercept + a cost per fp32 <-> int8 switch,
int8 units with their own scale where the fit supports one."""
import json
from dataclasses import replace

import numpy as np
import pytest

from autoc.arch.config import BlockOp
from autoc.candidate import Candidate
from autoc.errors import DeviceError
from autoc.latency.blocks import network_units, precision_transitions
from autoc.latency.calibrate import MIN_NETWORKS_FOR_PRECISION_SCALES, MIN_NETWORKS_FOR_TRANSITIONS, fit_correction
from autoc.latency.model import OVERHEAD, LookupTableLatencyModel
from autoc.latency.pack import MANIFEST, export_pack, import_results
from autoc.latency.profile import Correction, load_profile, new_host_profile, save_profile
from latency_nets import int8_policy, small_net

# stem, four blocks, head: int8 on blocks 1 and 2 only -> fp32 | int8 int8 | fp32 fp32 fp32 = 2 switches
SPEC = small_net(ops=(BlockOp(3, 3), BlockOp(3, 3), BlockOp(5, 3), BlockOp(3, 6)))
MIXED = int8_policy(SPEC, blocks={"stages.0.0", "stages.0.1"}, stem=False, head=False)


def table_model(correction: Correction, *, precisions=("fp32", "int8")) -> LookupTableLatencyModel:
    """A model over a made-up table (unit i costs 0.01 * (i + 1) ms): no measuring."""
    base = new_host_profile(1)
    units = [u for policy in (MIXED, int8_policy(SPEC)) for u in network_units(SPEC, policy) if u.measurable]
    table = {key: 0.01 * (i + 1) for i, key in enumerate(dict.fromkeys(u.key for u in units))}
    identity = replace(base.identity, precisions=precisions)
    profile = replace(base, device="board", identity=identity, blocks=table, correction=correction)
    return LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)


def synthetic(n: int, *, per_switch: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    sums = rng.uniform(0.5, 2.0, n)
    switches = rng.integers(0, 10, n)
    noise = 1 + rng.normal(0, 0.01, n)
    return sums, switches, (0.9 * sums + 0.05 + per_switch * switches) * noise


def test_precision_transitions_counts_switches_between_neighbours():
    assert precision_transitions([]) == 0
    assert precision_transitions(["fp32", "fp32"]) == 0
    assert precision_transitions(["fp32", "int8", "int8", "fp32", "int8"]) == 3


def test_fit_recovers_a_known_switch_cost():
    sums, switches, measured = synthetic(40, per_switch=0.02)
    correction = fit_correction(sums, measured, transitions=switches)
    assert correction.scale == pytest.approx(0.9, rel=0.03)
    assert correction.intercept_ms == pytest.approx(0.05, abs=0.02)
    assert correction.ms_per_transition == pytest.approx(0.02, rel=0.1)
    # without the switch counts the same data only gets scale + intercept, and fits worse
    plain = fit_correction(sums, measured)
    assert plain.ms_per_transition == 0.0

    def worst(c):
        return max(abs(c.apply(s, transitions=n) / m - 1) for s, n, m in zip(sums, switches, measured))

    assert worst(correction) < 0.04 < worst(plain)


def test_switch_term_needs_enough_networks_and_variation():
    sums, switches, measured = synthetic(MIN_NETWORKS_FOR_TRANSITIONS - 1, per_switch=0.05)
    assert fit_correction(sums, measured, transitions=switches).ms_per_transition == 0.0
    sums, _, measured = synthetic(30, per_switch=0.0)
    assert fit_correction(sums, measured, transitions=[3] * 30).ms_per_transition == 0.0


def test_a_negative_switch_cost_is_not_accepted():
    sums, switches, measured = synthetic(40, per_switch=-0.02)
    correction = fit_correction(sums, measured, transitions=switches)
    assert correction.ms_per_transition == 0.0 and correction.scale > 0


def test_prediction_is_the_formula_on_the_units():
    correction = Correction(scale=0.9, intercept_ms=0.05, ms_per_transition=0.02)
    model = table_model(correction)
    unit_sum = sum(model.profile.blocks[u.key] for u in network_units(SPEC, MIXED) if u.measurable)
    assert model.transitions(SPEC, MIXED) == 2
    assert model.predict(SPEC, MIXED) == pytest.approx(0.9 * unit_sum + 0.05 + 2 * 0.02)
    rows = model.breakdown(SPEC, MIXED)
    assert rows[-1] == (OVERHEAD, OVERHEAD, pytest.approx(0.05 + 2 * 0.02))
    assert sum(ms for *_, ms in rows) == pytest.approx(model.predict(SPEC, MIXED))
    # all int8: no switch, no switch cost
    assert model.transitions(SPEC, int8_policy(SPEC)) == 0


def test_skipped_blocks_do_not_count_as_switches():
    spec = small_net(ops=(BlockOp(3, 3), BlockOp(skip=True), BlockOp(3, 3)))
    policy = int8_policy(spec)  # the skipped block has no convs and reads as fp32
    assert [u.precision for u in network_units(spec, policy)].count("fp32") == 1
    assert table_model(Correction()).transitions(spec, policy) == 0


def test_no_switch_cost_on_a_device_without_int8_kernels():
    model = table_model(Correction(ms_per_transition=0.5), precisions=("fp32",))
    assert model.transitions(SPEC, MIXED) == 0


def test_a_profile_without_the_switch_term_loads_and_predicts_as_before(tmp_path):
    path = tmp_path / "old.json"
    save_profile(table_model(Correction(scale=0.8, intercept_ms=0.1)).profile, path)
    data = json.loads(path.read_text())
    data["correction"] = {"scale": 0.8, "intercept_ms": 0.1}  # as profiles were written before the term
    path.write_text(json.dumps(data))
    profile = load_profile(path)
    assert profile.correction == Correction(scale=0.8, intercept_ms=0.1, ms_per_transition=0.0)
    model = LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)
    assert model.predict(SPEC, MIXED) == pytest.approx(0.8 * model.blocks_ms(SPEC, MIXED) + 0.1)


def test_an_unknown_correction_field_is_refused_by_name(tmp_path):
    path = tmp_path / "future.json"
    save_profile(table_model(Correction()).profile, path)
    data = json.loads(path.read_text())
    data["correction"]["ms_per_cache_miss"] = 0.3
    path.write_text(json.dumps(data))
    with pytest.raises(DeviceError, match=r"future\.json.*ms_per_cache_miss"):
        load_profile(path)


def test_describe_names_every_term():
    assert Correction(scale=0.9, intercept_ms=-0.1).describe() == "x0.900 -0.100 ms"
    assert Correction(0.9, -0.1, 0.0173).describe() == "x0.900 -0.100 ms +0.0173 ms/transition"


def test_an_imported_pack_fits_the_switch_cost_from_its_networks(tmp_path, tiny_space):
    """--import fits the same correction as host calibration, from the device's own network times."""
    pack = tmp_path / "board"
    export_pack(pack, device="board", space=tiny_space, networks=MIN_NETWORKS_FOR_TRANSITIONS + 2, held_out=1, seed=3)
    manifest = json.loads((pack / MANIFEST).read_text())
    unit_ms = {m["name"]: 0.02 + 0.003 * i for i, m in enumerate(manifest["models"]) if m["kind"] == "unit"}
    rows = ["name,kind,ms", "empty,empty,0.001", *(f"{name},unit,{ms + 0.001}" for name, ms in unit_ms.items())]
    for entry in manifest["networks"]:
        candidate = Candidate.from_dict(entry["candidate"])
        units = [u for u in network_units(candidate.netspec(), candidate.policy) if u.measurable]
        switches = precision_transitions(u.precision for u in units)
        rows.append(f"{entry['name']},network,{0.9 * sum(unit_ms[u.key] for u in units) + 0.05 + 0.02 * switches}")
    (pack / "RESULTS.csv").write_text("\n".join(rows) + "\n")
    profile = import_results(pack / "RESULTS.csv", device="board")
    assert profile.correction.scale == pytest.approx(0.9, rel=1e-6)
    assert profile.correction.ms_per_transition == pytest.approx(0.02, rel=1e-6)
    assert profile.validation["within_10pct"] == 1.0 and profile.validation["mape_pct"] < 1e-6


def synthetic_precisions(n: int, *, int8_scale: float, seed: int = 0):
    """Networks with a random int8 share; fp32 units scale by 0.9, int8 ones by ``int8_scale``."""
    rng = np.random.default_rng(seed)
    sums = rng.uniform(0.5, 2.0, n)
    int8 = sums * rng.uniform(0.0, 0.9, n)
    switches = rng.integers(0, 10, n)
    noise = 1 + rng.normal(0, 0.005, n)
    measured = (0.9 * (sums - int8) + int8_scale * int8 + 0.05 + 0.01 * switches) * noise
    return sums, int8, switches, measured


def test_fit_recovers_a_separate_int8_scale():
    sums, int8, switches, measured = synthetic_precisions(40, int8_scale=0.75)
    correction = fit_correction(sums, measured, transitions=switches, int8_sums=int8)
    assert correction.scale == pytest.approx(0.9, rel=0.03)
    assert correction.int8_scale == pytest.approx(0.75, rel=0.05)
    assert correction.ms_per_transition == pytest.approx(0.01, rel=0.2)
    single = fit_correction(sums, measured, transitions=switches)
    assert single.int8_scale is None

    def worst(c):
        return max(abs(c.apply(s, transitions=n, int8_ms=i) / m - 1) for s, i, n, m in zip(sums, int8, switches, measured))

    assert worst(correction) < 0.02 < worst(single)


def test_int8_scale_needs_enough_networks_and_a_varying_int8_share():
    sums, int8, switches, measured = synthetic_precisions(MIN_NETWORKS_FOR_PRECISION_SCALES - 1, int8_scale=0.6)
    assert fit_correction(sums, measured, transitions=switches, int8_sums=int8).int8_scale is None
    sums, _, switches, measured = synthetic_precisions(40, int8_scale=0.9)
    assert fit_correction(sums, measured, transitions=switches, int8_sums=[0.0] * 40).int8_scale is None


def test_int8_units_scale_apart_in_prediction_and_breakdown():
    correction = Correction(scale=0.9, intercept_ms=0.05, ms_per_transition=0.02, int8_scale=0.7)
    model = table_model(correction)
    units = [u for u in network_units(SPEC, MIXED) if u.measurable]
    fp32 = sum(model.profile.blocks[u.key] for u in units if u.precision == "fp32")
    int8 = sum(model.profile.blocks[u.key] for u in units if u.precision == "int8")
    assert int8 > 0 and fp32 > 0
    assert model.predict(SPEC, MIXED) == pytest.approx(0.9 * fp32 + 0.7 * int8 + 0.05 + 2 * 0.02)
    rows = model.breakdown(SPEC, MIXED)
    assert sum(ms for *_, ms in rows) == pytest.approx(model.predict(SPEC, MIXED))
    by_name = {name: ms for name, _, ms in rows}
    block = next(u for u in units if u.precision == "int8")
    assert by_name[block.name] == pytest.approx(0.7 * model.profile.blocks[block.key])
    # a device without int8 kernels runs int8 layers at their fp32 time: the fp32 scale applies
    no_int8 = table_model(correction, precisions=("fp32",))
    assert no_int8.predict(SPEC, MIXED) == pytest.approx(0.9 * no_int8.blocks_ms(SPEC, MIXED) + 0.05)


def test_the_int8_scale_round_trips_and_is_absent_when_unused(tmp_path):
    path = tmp_path / "p.json"
    save_profile(table_model(Correction(0.9, 0.05, 0.01, int8_scale=0.8)).profile, path)
    assert load_profile(path).correction.int8_scale == 0.8
    save_profile(table_model(Correction(0.9, 0.05, 0.01)).profile, path)
    assert "int8_scale" not in json.loads(path.read_text())["correction"]  # older autoc versions still read it
    assert load_profile(path).correction.int8_scale is None
    assert Correction(0.9, -0.1, int8_scale=0.85).describe() == "x0.900 (int8 x0.850) -0.100 ms"
