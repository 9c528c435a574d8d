import dataclasses
import logging

import pytest

from autoc.errors import DeviceError
from autoc.latency import from_networks as fn
from autoc.latency.device import open_latency_model
from autoc.latency.model import LookupTableLatencyModel
from autoc.latency.profile import load_profile, save_profile
from autoc.space import load_space


@pytest.fixture(scope="module")
def fbnet_space():
    return load_space("fbnet-cifar")


def fitted(networks, space, fit=100):
    fit_set, held_out = fn.split_fit_held_out(networks, fit=fit, seed=0)
    profile = fn.networks_profile(
        device="pixel3", fit=fn.fit_additive(fit_set), space=space, source_file="x.csv", column="pixel3_ms", created="t"
    )
    return profile, held_out


def test_additive_device_is_recovered_from_100_networks(fbnet_head, fbnet_space):
    # pixel3 times in HW-NAS-Bench are exactly additive over layers: 100 networks pin them down.
    networks = fn.read_networks(fbnet_head, space=fbnet_space, column="pixel3_ms")
    assert len(networks) == 160 and networks[0].latency_ms == pytest.approx(17.5577)
    profile, held_out = fitted(networks, fbnet_space)
    figures = fn.validate_on(LookupTableLatencyModel(profile, profile_path=None, measure_missing=False), held_out)
    assert figures["n"] == 60
    assert figures["within_10pct"] >= 0.95, figures["worst"]
    assert figures["kendall_tau"] >= 0.85 and figures["mape_pct"] < 3


def test_fitted_profile_serves_a_search_on_its_space(fbnet_head, fbnet_space, tmp_path, caplog):
    import optuna

    from autoc.space import sample_candidate

    profile, _ = fitted(fn.read_networks(fbnet_head, space=fbnet_space, column="pixel3_ms"), fbnet_space)
    save_profile(profile, tmp_path / "devices" / "pixel3.json")
    assert load_profile(tmp_path / "devices" / "pixel3.json") == profile
    model = open_latency_model("pixel3", runs_dir=tmp_path, space=fbnet_space, progress=False)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    with caplog.at_level(logging.WARNING, logger="autoc.latency"):
        for _ in range(20):  # int8 layers and 10-class heads were never measured: prior / fp32 time
            candidate = sample_candidate(fbnet_space, study.ask(), num_classes=10)
            assert 5 < model.predict(candidate.netspec(), candidate.policy) < 60
    assert "no int8 kernels" in caplog.text


def write(tmp_path, text):
    path = tmp_path / "nets.csv"
    path.write_text(text)
    return path


HEADER = "index," + ",".join(f"layer{i}" for i in range(22)) + ",pixel2_ms\n"
ROW = ",".join(["k3_e1"] * 22)


@pytest.mark.parametrize(
    "body, match",
    [
        (f"{ROW}\n", r"line 1: missing columns \['pixel2_ms'\]"),
        (HEADER + f"0,{ROW},fast\n", r"line 2: pixel2_ms = 'fast' is not a number"),
        (HEADER + f"0,{ROW},-3\n", r"line 2: pixel2_ms = '-3' is not a positive time"),
        (HEADER + f"0,{ROW},28\n1,{ROW.replace('k3_e1', 'k9_e9', 1)},30\n", r"line 3: .*outside space.*k9_e9"),
        (HEADER + f"0,{ROW},28,5\n", r"line 2: 25 fields but the header \(line 1\) has 24"),
        ("index,layer0,pixel2_ms\n0,k3_e1,28\n", r"layer0..layer21 expected"),
    ],
    ids=["missing-column", "non-numeric", "negative", "outside-space", "ragged", "layer-count"],
)
def test_bad_network_csv_names_file_and_line(tmp_path, fbnet_space, body, match):
    if not body.startswith("index"):
        body = HEADER.replace(",pixel2_ms", "") + "0," + body
    path = write(tmp_path, body)
    with pytest.raises(DeviceError, match=match) as err:
        fn.read_networks(path, space=fbnet_space, column="pixel2_ms")
    assert str(path) in str(err.value)


def test_fit_needs_enough_networks(fbnet_head, fbnet_space):
    networks = fn.read_networks(fbnet_head, space=fbnet_space, column="pixel3_ms")
    with pytest.raises(DeviceError, match="fit 500 leaves none of the 160 networks in the CSV held out"):
        fn.split_fit_held_out(networks, fit=500)


def _synthetic_mixed_csv(path, space, count, *, switch_ms, int8_factor, dw_ms_per_mmac=None):
    """Random mixed-precision networks of ``space`` timed by a known additive device: int8 MACs
    cost ``int8_factor`` x fp32 ones, each fp32<->int8 switch ``switch_ms``; with
    ``dw_ms_per_mmac`` ({kernel: ms}) a depthwise MAC costs that (times the int8 factor) instead."""
    import csv

    import optuna

    from autoc.latency.blocks import network_units, precision_transitions, unit_work
    from autoc.space import sample_candidate

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=11))
    rows, names = [], None
    for i in range(count):
        trial = study.ask()
        candidate = sample_candidate(space, trial)
        units = [u for u in network_units(candidate.netspec(), candidate.policy) if u.measurable]
        ms = 0.05 + switch_ms * precision_transitions(u.precision for u in units)
        for unit in units:
            macs, elements = unit_work(unit)
            factor = int8_factor if unit.precision == "int8" else 1
            if dw_ms_per_mmac:
                for kernel, mmacs in _depthwise_mmacs(unit).items():
                    macs -= mmacs * 1e6
                    ms += dw_ms_per_mmac[kernel] * mmacs * factor
            ms += 0.004 * macs / 1e6 * factor + 0.02 * elements / 1e6 + 0.003
        names = names or sorted(trial.params)
        rows.append([f"net{i}", *(trial.params[n] for n in names), f"{ms:.6f}"])
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([["index", *names, "dev_ms"], *rows])
    return path


def _depthwise_mmacs(unit):
    """{kernel: million MACs} of the unit's depthwise convs, computed here from the convs' shapes."""
    out, resolution = {}, unit.input_shape[2]
    for conv in unit.convs:
        resolution = -(-resolution // conv.stride)
        if conv.depthwise:
            out[conv.kernel] = out.get(conv.kernel, 0.0) + conv.cout * conv.kernel**2 * resolution**2 / 1e6
    return out


def test_depthwise_macs_are_priced_per_kernel_size_where_the_networks_tell_them_apart(tmp_path):
    # A device whose 7x7 depthwise MACs cost 0.4 x a 3x3's (more work per byte moved): the prior
    # prices each kernel size apart and predicts held-out networks better than one pooled cost.
    space = load_space("mbv2-cifar")
    costs = {3: 0.02, 5: 0.012, 7: 0.008}
    path = _synthetic_mixed_csv(tmp_path / "dw.csv", space, 200, switch_ms=0.0, int8_factor=1.0, dw_ms_per_mmac=costs)
    networks = fn.read_networks(path, space=space, column="dev_ms")
    fit_set, held_out = fn.split_fit_held_out(networks, fit=150, seed=0)
    prior = fn.fit_additive(fit_set).prior
    for kernel, cost in costs.items():
        assert prior.coefficient(f"fp32_dw_k{kernel}_mmac") == pytest.approx(cost, rel=0.3), prior
    profile = fn.networks_profile(device="dev", fit=fn.fit_additive(fit_set), space=space, source_file=str(path),
                                  column="dev_ms", created="t")
    split = fn.validate_on(LookupTableLatencyModel(profile, profile_path=None, measure_missing=False), held_out)
    pooled = {name: prior.coefficient("fp32_dw_k5_mmac") if "_dw_" in name else prior.coefficient(name)
              for name in prior.coefficients}  # the same prior with one cost per depthwise MAC
    from autoc.latency.profile import UnitPrior

    pooled_profile = dataclasses.replace(profile, prior=UnitPrior(pooled), blocks={})
    no_table = dataclasses.replace(profile, blocks={})
    figures = {name: fn.validate_on(LookupTableLatencyModel(p, profile_path=None, measure_missing=False), held_out)
               for name, p in (("split", no_table), ("pooled", pooled_profile))}
    assert figures["split"]["mape_pct"] < figures["pooled"]["mape_pct"] / 2, figures
    assert split["mape_pct"] < 2.0


def test_mixed_precision_networks_fit_an_int8_cost_and_a_switch_cost(tmp_path):
    space = load_space("mbv2-cifar")
    path = _synthetic_mixed_csv(tmp_path / "mixed.csv", space, 160, switch_ms=0.03, int8_factor=0.35)
    networks = fn.read_networks(path, space=space, column="dev_ms")
    from autoc.latency.blocks import measurable_units

    units = [u for n in networks[:2] for u in measurable_units(n.candidate.netspec(), n.candidate.policy)]
    assert any(u.precision == "int8" for u in units) and any(u.precision == "fp32" for u in units)
    fit_set, held_out = fn.split_fit_held_out(networks, fit=100, seed=0)
    figures = {}
    for terms in (True, False):
        additive = fn.fit_additive(fit_set, precision_terms=terms)
        profile = fn.networks_profile(device="dev", fit=additive, space=space, source_file=str(path), column="dev_ms")
        model = LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)
        figures[terms] = fn.validate_on(model, held_out)
        if terms:
            assert profile.identity.precisions == ("fp32", "int8")  # the data ran int8 kernels
            assert additive.ms_per_transition == pytest.approx(0.03, rel=0.35)
            coefficient = additive.prior.coefficient
            for conv in ("mmac", "dw_mmac"):  # the device's int8 MACs cost 0.35 x fp32 ones, depthwise or not
                assert coefficient(f"int8_{conv}") / coefficient(f"fp32_{conv}") == pytest.approx(0.35, rel=0.35)
            save_profile(profile, tmp_path / "dev.json")
            assert load_profile(tmp_path / "dev.json") == profile
        else:
            assert profile.identity.precisions == ("fp32",) and additive.ms_per_transition == 0
    assert figures[True]["mape_pct"] < 1.5 and figures[True]["kendall_tau"] > 0.95, figures[True]["worst"]
    assert figures[True]["mape_pct"] < figures[False]["mape_pct"] / 2


def test_fp32_networks_get_no_precision_terms(fbnet_head, fbnet_space):
    fit_set, _ = fn.split_fit_held_out(fn.read_networks(fbnet_head, space=fbnet_space, column="pixel3_ms"), fit=100)
    additive = fn.fit_additive(fit_set)
    assert additive.precisions == ("fp32",) and additive.ms_per_transition == 0
    assert not any(name.startswith("int8_") for name in additive.prior.coefficients)  # int8 costs as fp32
    assert additive.prior.coefficient("int8_dw_mmac") == additive.prior.coefficient("fp32_dw_mmac")
    uniform = fn.fit_additive(fit_set, precision_terms=False).prior  # the fit before the named features
    assert uniform.coefficient("fp32_dw_mmac") == uniform.coefficient("fp32_mmac")


def test_a_profile_with_the_older_prior_loads_with_one_cost_per_mac(fbnet_head, fbnet_space, tmp_path):
    import json

    import optuna

    from autoc.space import sample_candidate

    profile, _ = fitted(fn.read_networks(fbnet_head, space=fbnet_space, column="pixel3_ms"), fbnet_space)
    path = tmp_path / "devices" / "pixel3.json"
    save_profile(profile, path)
    data = json.loads(path.read_text())
    data["prior"] = {"ms_per_mmac": 0.2, "ms_per_melement": 0.05, "ms_per_unit": 0.01}
    data["blocks"] = {}
    path.write_text(json.dumps(data))
    loaded = load_profile(path)
    assert loaded.prior.coefficients == {"fp32_mmac": 0.2, "fp32_melement": 0.05, "fp32_unit": 0.01}
    model = LookupTableLatencyModel(loaded, profile_path=None, measure_missing=False)
    candidate = sample_candidate(fbnet_space, optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask())
    from autoc.latency.blocks import network_units, unit_work

    units = [u for u in network_units(candidate.netspec(), candidate.policy) if u.measurable]
    expected = sum(0.2 * unit_work(u)[0] / 1e6 + 0.05 * unit_work(u)[1] / 1e6 + 0.01 for u in units)
    assert model.predict(candidate.netspec(), candidate.policy) == pytest.approx(
        loaded.correction.apply(expected, int8_ms=0.0, transitions=0))


def test_host_measured_mixed_precision_networks_are_predicted_better_with_precision_terms():
    # 200 random mbv2-cifar networks timed on a CPU by the calibration protocol (benchmarks.latency.from_networks_host)
    from pathlib import Path

    space = load_space("mbv2-cifar")
    csv = Path(__file__).resolve().parents[2] / "benchmarks" / "latency" / "host_networks_mbv2.csv.gz"
    networks = fn.read_networks(csv, space=space, column="host_ms")
    fit_set, held_out = fn.split_fit_held_out(networks, fit=100, seed=0)
    figures = {}
    for terms in (True, False):
        profile = fn.networks_profile(device="cpu", fit=fn.fit_additive(fit_set, precision_terms=terms), space=space,
                                      source_file=str(csv), column="host_ms", created="t")
        figures[terms] = fn.validate_on(LookupTableLatencyModel(profile, profile_path=None, measure_missing=False),
                                        held_out)
    assert figures[True]["kendall_tau"] > 0.74 and figures[True]["within_10pct"] >= 0.85, figures[True]
    assert figures[True]["kendall_tau"] > figures[False]["kendall_tau"] + 0.05
    assert figures[True]["mape_pct"] < figures[False]["mape_pct"] - 1


def test_a_prior_feature_without_a_coefficient_takes_its_first_stand_in():
    from autoc.latency.profile import UnitPrior

    int8_only = UnitPrior({"int8_mmac": 2.0, "int8_unit": 1.0})  # fitted on networks that ran int8 alone
    assert int8_only.coefficient("fp32_mmac") == 2.0 and int8_only.coefficient("fp32_dw_mmac") == 2.0
    assert int8_only.coefficient("fp32_unit") == 1.0 and int8_only.coefficient("fp32_melement") == 0.0
    mixed = UnitPrior({"fp32_mmac": 1.0, "fp32_dw_mmac": 3.0, "int8_mmac": 0.5})
    assert mixed.coefficient("int8_dw_mmac") == 0.5  # an int8 depthwise MAC as another int8 MAC, not as fp32
    assert mixed.ms({"int8_mmac": 2.0, "int8_dw_mmac": 1.0, "int8_unit": 1.0}) == pytest.approx(1.5)
    # a prior from before the kernel split prices every depthwise kernel at its one depthwise cost
    assert mixed.coefficient("fp32_dw_k7_mmac") == 3.0 and mixed.coefficient("int8_dw_k3_mmac") == 0.5
    split = UnitPrior({"fp32_mmac": 1.0, "fp32_dw_k3_mmac": 4.0, "fp32_dw_mmac": 2.0})
    assert split.coefficient("fp32_dw_k3_mmac") == 4.0 and split.coefficient("fp32_dw_k5_mmac") == 2.0
    with pytest.raises(ValueError, match="needs coefficients"):
        UnitPrior({})
