"""`autoc export` on a real tiny study: every format rebuilds or describes the trial's model."""
import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import optuna
import pytest
import torch

import autoc
from autoc.arch.builder import build_model
from autoc.candidate import Candidate
from autoc.cli import main
from autoc.compress.quant import apply_quantization
from autoc.export.exporter import ExportRequest, export_trial
from autoc.onnx.export import node_scope
from autoc.search.stored import open_stored_run

X = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def records(run_dir):
    return {r.number: r for r in open_stored_run(run_dir).records()}


def trial_model(record):
    """The trial's model as the search left it, rebuilt here from the stored candidate and weights."""
    candidate = Candidate.from_dict(record.candidate)
    model = apply_quantization(build_model(candidate.netspec()), candidate.policy)
    model.load_state_dict(torch.load(record.weights, weights_only=True))
    return candidate, model.eval()


def mixed_trial(run_dir):
    """A trained trial that is pruned somewhere and runs some, not all, layers int8."""
    for number, record in sorted(records(run_dir).items()):
        candidate = Candidate.from_dict(record.candidate)
        precisions = {candidate.policy.get(n).precision for n in candidate.full_netspec().layer_names()}
        if record.weights and precisions == {"fp32", "int8"}:
            return number, record
    pytest.fail("the tiny study has no mixed-precision trial; change its seed or trial count")


def export(run_dir, *args, capsys=None):
    code = main(["export", str(run_dir), *args])
    return code, (capsys.readouterr() if capsys else None)


def test_policy_export_round_trip_gives_the_same_outputs(tiny_run, tmp_path):
    number, record = mixed_trial(tiny_run)
    out = tmp_path / "p.policy.json"
    assert export(tiny_run, "--trial", str(number), "--output", str(out))[0] == 0
    assert (tmp_path / "p.weights.pt").is_file()
    moved = tmp_path / "elsewhere"  # another program, another folder: the file and its weights suffice
    moved.mkdir()
    for name in ("p.policy.json", "p.weights.pt"):
        shutil.copy(tmp_path / name, moved / name)
    rebuilt = autoc.load_policy(moved / "p.policy.json").build_model()
    _, model = trial_model(record)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(X), model(X), rtol=0, atol=0)
    data = json.loads(out.read_text())
    assert data["trial"] == number and data["metrics"]["accuracy"] == record.accuracy
    assert data["space"]["name"] == "tiny-export"


def test_default_export_is_the_best_trial(tiny_run):
    best = max((r for r in records(tiny_run).values() if r.feasible), key=lambda r: (r.accuracy, -r.latency_ms))
    result = export_trial(ExportRequest(target=tiny_run, format="state-dict", force=True))
    assert result.trial == best.number
    assert result.paths[0] == tiny_run / "export" / f"trial-{best.number}.state_dict.pt"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")  # this test loads it
def test_torchscript_and_state_dict_reproduce_the_trial(tiny_run, tmp_path):
    number, record = mixed_trial(tiny_run)
    _, model = trial_model(record)
    for fmt in ("torchscript", "state-dict"):
        assert export(tiny_run, "--trial", str(number), "--format", fmt, "-o", str(tmp_path / fmt))[0] == 0
    scripted = torch.jit.load(tmp_path / "torchscript")
    candidate = Candidate.from_dict(record.candidate)
    fresh = apply_quantization(build_model(candidate.netspec()), candidate.policy)
    fresh.load_state_dict(torch.load(tmp_path / "state-dict", weights_only=True))
    with torch.no_grad():
        expected = model(X)
        torch.testing.assert_close(scripted(X), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(fresh.eval()(X), expected, rtol=0, atol=0)


def test_onnx_is_pruned_int8_only_where_the_policy_says_and_prints_the_check(tiny_run, tiny_val_images, tmp_path, capsys):
    import onnxruntime as ort

    number, record = mixed_trial(tiny_run)
    candidate, model = trial_model(record)
    out = tmp_path / "m.onnx"
    code, printed = export(tiny_run, "--trial", str(number), "--format", "onnx", "-o", str(out), "--allow-drift",
                           capsys=capsys)
    assert code == 0
    assert "latency, ms (p10, 1 thread)" in printed.out and "accuracy, validation split" in printed.out
    assert "in 2 sessions, which differ by" in printed.out and "int8 weights stored as" in printed.out

    graph = onnx.load(out).graph
    producers = {o: n for n in graph.node for o in n.output}
    initializers = {i.name: i for i in graph.initializer}
    convs = {node_scope(n): n for n in graph.node if n.op_type == "Conv"}
    int8 = {s for s, n in convs.items() if producers.get(n.input[1]) is not None and producers[n.input[1]].op_type == "DequantizeLinear"}
    spec = candidate.netspec()
    assert int8 == {n for n in spec.layer_names() if candidate.policy.get(n).precision == "int8"}
    assert 0 < len(int8) < len(spec.layer_names())
    # Physically pruned: every conv's weight has the pruned plan's output channels.
    for conv in spec.convs():
        weight_name = convs[conv.name].input[1]
        source = producers[weight_name].input[0] if weight_name in producers else weight_name
        assert initializers[source].dims[0] == conv.cout, conv.name

    session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    x = tiny_val_images[:32]
    got = np.concatenate([session.run(None, {"input": x[i : i + 1].numpy()})[0] for i in range(len(x))])
    with torch.no_grad():
        expected = model(x).numpy()
    # int8 runtime vs the fake-quant model on real images: the same function up to quantisation
    # noise (measured 1.5-2.2 % relative error on such studies; calibration differs slightly).
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 0.1


def test_csv_rows_follow_the_plan_and_sum_to_the_prediction(tiny_run, tmp_path):
    number, record = mixed_trial(tiny_run)
    out = tmp_path / "layers.csv"
    assert export(tiny_run, "--trial", str(number), "--format", "csv", "-o", str(out))[0] == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    spec = Candidate.from_dict(record.candidate).netspec()
    by_layer = {r["layer"]: r for r in rows}
    assert list(by_layer) == [*spec.layer_names(), "classifier", "overhead"]
    for conv in spec.convs():
        assert int(by_layer[conv.name]["out_channels"]) == conv.cout
    assert by_layer["stem"]["macs"] == str(16 * 16 * conv_size(spec.stem))
    total = sum(float(r["predicted_ms"]) for r in rows)
    assert total == pytest.approx(record.latency_ms, rel=1e-3)


def conv_size(conv):
    return conv.cout * conv.cin // conv.groups * conv.kernel**2


def test_nni_config_lists_match_the_policy(tiny_run, tmp_path):
    number, record = mixed_trial(tiny_run)
    out = tmp_path / "nni.json"
    assert export(tiny_run, "--trial", str(number), "--format", "nni", "-o", str(out))[0] == 0
    config = json.loads(out.read_text())
    candidate = Candidate.from_dict(record.candidate)
    pruned = {c.name: c.cout for c in candidate.netspec().convs()}
    full = {c.name: c.cout for c in candidate.full_netspec().convs()}
    for entry in config["pruning"]:
        for op in entry["op_names"]:
            layer = op.removesuffix(".conv")
            assert round(full[layer] * (1 - entry["sparse_ratio"])) == pruned[layer]
    assert {op for e in config["pruning"] for op in e["op_names"]} == {f"{n}.conv" for n in full if pruned[n] < full[n]}
    quantized = {op for e in config["quantization"] for op in e["op_names"]}
    assert quantized == {f"{n}.conv" for n in full if candidate.policy.get(n).precision == "int8"}  # no classifier
    for entry in config["quantization"]:
        bits = {candidate.policy.get(op.removesuffix(".conv")).weight_bits for op in entry["op_names"]}
        assert {entry["target_settings"]["weight"]["quant_dtype"]} == {f"int{b}" for b in bits}


def test_existing_output_needs_force_and_is_left_alone(tiny_run, tmp_path, capsys):
    out = tmp_path / "x.nni.json"
    out.write_text('{"keep": "me"}')
    code, printed = export(tiny_run, "--format", "nni", "-o", str(out), capsys=capsys)
    assert code == 2 and "--force" in printed.err and len(printed.err.strip().splitlines()) == 1
    assert out.read_text() == '{"keep": "me"}'
    weights = tmp_path / "p.weights.pt"
    weights.write_text("old weights")  # a policy export also refuses when only its weights file exists
    code, printed = export(tiny_run, "-o", str(tmp_path / "p.policy.json"), capsys=capsys)
    assert code == 2 and not (tmp_path / "p.policy.json").exists() and weights.read_text() == "old weights"
    assert export(tiny_run, "--format", "nni", "-o", str(out), "--force")[0] == 0
    assert json.loads(out.read_text())["format"] == "nni.compression/3"


def test_bad_trials_and_run_directories_exit_2(tiny_run, tmp_path, capsys):
    code, printed = export(tiny_run, "--trial", "99", capsys=capsys)
    assert code == 2 and "no completed trial 99" in printed.err
    code, printed = export(tmp_path, capsys=capsys)
    assert code == 2 and "holds no study.db" in printed.err

    copy = tmp_path / "t"
    shutil.copytree(tiny_run, copy)
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{copy / 'study.db'}")
    over = next(iter(records(tiny_run).values()))
    study.add_trial(optuna.trial.create_trial(
        values=[0.0, 99.0, 1000.0],
        user_attrs={"candidate": over.candidate, "latency_ms": 99.0, "size_bytes": 1000, "feasible": False},
    ))
    number = len(study.trials) - 1
    code, printed = export(copy, "--trial", str(number), capsys=capsys)
    assert code == 2 and f"trial {number} of study 't' was never trained" in printed.err


def test_an_onnx_export_off_the_searchs_latency_says_so_and_exits_non_zero_unless_drift_is_allowed(
    tiny_run, tmp_path, capsys
):
    import sqlite3

    number, record = mixed_trial(tiny_run)
    copy = tmp_path / "t"
    shutil.copytree(tiny_run, copy)
    # The study as if its profile had predicted a third of what the model runs in.
    with sqlite3.connect(copy / "study.db") as db:
        (trial_id,) = db.execute("SELECT trial_id FROM trials WHERE number = ?", (number,)).fetchone()
        changed = db.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = 'latency_ms'",
            (json.dumps(record.latency_ms / 3), trial_id),
        ).rowcount
    assert changed == 1
    out = tmp_path / "m.onnx"
    code, printed = export(copy, "--trial", str(number), "--format", "onnx", "-o", str(out), capsys=capsys)
    assert code == 1 and out.is_file()  # written, so it can be inspected
    assert "from the predicted" in printed.err and "(limit ±10%;" in printed.err
    assert printed.err.strip().splitlines()[-1] == (
        f"autoc export: {out} is written but is not the model the search scored; pass --allow-drift to accept it"
    )
    code, printed = export(copy, "--trial", str(number), "--format", "onnx", "-o", str(out), "--force",
                           "--allow-drift", capsys=capsys)
    assert code == 0 and "from the predicted" in printed.err  # still said, but accepted
    assert "pass --allow-drift" not in printed.err


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "state-dict"])
def test_a_study_whose_weights_predate_the_runtime_requantisers_still_exports(tiny_run, tmp_path, fmt):
    number, record = mixed_trial(tiny_run)
    copy = tmp_path / "t"
    shutil.copytree(tiny_run, copy)
    weights = next(copy.rglob(Path(record.weights).name))
    state = torch.load(weights, weights_only=True)
    old = {k: v for k, v in state.items() if ".output." not in k and "sum_quant" not in k}
    assert len(old) < len(state)  # the trial has requantisers that studies saved before them lack
    torch.save(old, weights)
    out = tmp_path / f"m.{fmt}"
    assert export(copy, "--trial", str(number), "--format", fmt, "-o", str(out), "--allow-drift")[0] == 0
    assert out.stat().st_size > 0
