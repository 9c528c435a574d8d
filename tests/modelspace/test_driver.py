"""`autoc compress` end to end on a user's model (built by the user's own code), and its refusals."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from autoc.cli import main
from autoc.modelspace import load_model
from autoc.modelspace.policy_file import load_model_policy

# --allow-drift: these runs test the search, not the table's accuracy on a loaded machine
# (test_chosen_policies_that_drift_from_their_estimates_say_how tests the check).
COMMON = ["--dataset", "digits", "--input-size", "16", "--max-train", "300", "--max-val", "100",
          "--pretrain-steps", "60", "--finetune-steps", "5", "--allow-drift", "--study", "s"]


@pytest.fixture(scope="module")
def original_ms(tmp_path_factory):
    """The user's model's predicted latency, as the refusal of a budget it already meets states it."""
    runs = tmp_path_factory.mktemp("runs")
    return runs, _refusal_ms(runs)


def _refusal_ms(runs):
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["compress", "usernets:small_resnet", "--budget-ms", "1000", "--runs-dir", str(runs), *COMMON])
    assert code == 2
    lines = [line for line in err.getvalue().splitlines() if line.startswith("autoc: error:")]
    assert len(lines) == 1 and "the original model already fits every budget" in lines[0], err.getvalue()
    return float(re.search(r"\(([\d.]+) ms predicted", lines[0]).group(1))


def test_compress_chooses_a_policy_per_budget_that_rebuilds_from_its_file_and_resumes(original_ms, capsys):
    runs, ms = original_ms
    budgets = [f"{0.5 * ms:.4f}", f"{0.8 * ms:.4f}", "0.000001"]
    assert main(["compress", "usernets:small_resnet", "--budget-ms", *budgets, "--trials", "5",
                 "--runs-dir", str(runs), *COMMON]) == 0
    out = capsys.readouterr().out
    assert "original model (trained here: no --weights given)" in out and "5 trials (5 this run" in out
    table_multiple = json.loads((runs / "s" / "layer_latency.json").read_text())["channel_multiple"]
    assert (f"channel counts kept in multiples of {table_multiple}\n" in out) == (table_multiple > 1)
    run_dir = runs / "s"
    files = 0
    assert "budget 1e-06 ms: below the most compressed policy's predicted" in out  # among others: reported
    for budget in budgets[:2]:
        assert f"budget {float(budget):g} ms: " in out
        path = run_dir / f"best_policy-{float(budget):g}ms.json"
        if not path.is_file():  # no trial of five fit this budget: the summary says so
            assert f"budget {float(budget):g} ms: no trial fits yet" in out
            continue
        file, files = load_model_policy(path), files + 1
        assert file.metrics["predicted_ms"] <= float(budget) and file.reference.model == "usernets:small_resnet"
        pre = file.preprocessing  # the data path's own, in the file and in the ONNX program
        assert pre.class_names == tuple("0123456789") and (pre.input_size, pre.colour, pre.pixel_max) == (16, "grey", 16)
        program = onnx.load(run_dir / f"compressed-{float(budget):g}ms.onnx")
        meta = {p.key: p.value for p in program.metadata_props}
        assert json.loads(meta["autoc.preprocessing"]) == pre.to_dict()
        assert program.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        model = load_model(file.reference.model, num_classes=file.reference.num_classes)
        model.load_state_dict(torch.load(run_dir / "pretrained.pt", weights_only=True))
        rebuilt = file.apply(model)
        saved = torch.load(run_dir / f"compressed-{float(budget):g}ms.pt", weights_only=True)
        rebuilt.load_state_dict(saved)  # strict: the rebuilt model has exactly the searched shapes
        multiple = json.loads((run_dir / "layer_latency.json").read_text())["channel_multiple"]
        assert file.policy.multiple == multiple >= 1  # the table's multiple, applied and recorded
        for name, module in rebuilt.named_modules():
            if isinstance(module, torch.nn.Conv2d) and module.out_channels not in (64, 128):  # pruned ones
                assert module.out_channels % multiple == 0, (name, module.out_channels, multiple)
        assert rebuilt(torch.randn(2, 3, 16, 16)).shape == (2, 10)
        reported = re.search(rf"budget {float(budget):g} ms: .*\(ONNX ([\d.]+)\)", out).group(1)
        assert _onnx_accuracy_without_autoc(run_dir / f"compressed-{float(budget):g}ms.onnx", runs) == reported
        # timed as autoc export times it: two sessions, how far apart shown
        assert re.search(rf"budget {float(budget):g} ms: .* ms measured \(sessions [\d.]+% apart", out)
    assert files >= 1  # the larger budget is met by some of five trials
    import optuna

    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{run_dir / 'study.db'}").trials
    # the study starts from policies built from the table (autoc.modelspace.starts): the greedy
    # policy of each budget it can meet, largest first
    assert trials[0].user_attrs["latency_ms"] <= max(map(float, budgets))
    assert trials[1].user_attrs["latency_ms"] <= float(budgets[0])
    assert main(["show", str(run_dir)]) == 0  # the stored summary, as the command printed it
    assert capsys.readouterr().out == out
    assert main(["compress", str(run_dir), "--trials", "6", "--allow-drift"]) == 0  # resumed from its directory alone
    assert "6 trials (1 this run" in capsys.readouterr().out


def test_a_compress_run_directory_moved_and_renamed_shows_and_resumes_on_its_own(original_ms, tmp_path, capsys):
    runs, ms = original_ms
    assert main(["compress", "usernets:small_resnet", "--budget-ms", f"{0.8 * ms:.4f}", "--trials", "2",
                 "--runs-dir", str(runs), *COMMON[:-1], "moving"]) == 0
    capsys.readouterr()
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(runs / "moving", moved)
    shutil.rmtree(runs / "moving")

    assert main(["show", str(moved)]) == 0
    shown = capsys.readouterr().out
    assert str(runs / "moving") not in shown and "elsewhere/renamed/" in shown  # its files, where they are now
    assert main(["compress", str(moved), "--trials", "3", "--allow-drift"]) == 0
    assert "3 trials (1 this run" in capsys.readouterr().out
    assert not (runs / "moving").exists() and not (tmp_path / "elsewhere" / "moving").exists()  # resumed in place


@pytest.mark.parametrize("args, message", [
    (["torchvision:resnet19", "--budget-ms", "1"], "torchvision has no classification model 'resnet19'"),
    (["usernets:small_resnet", "--budget-ms", "0.000001", "0.000002"], "is below the most compressed policy's predicted"),
    (["usernets:small_resnet", "--budget-ms", "1", "--device", "pixel9"],
     "device 'pixel9' has no latency table for usernets:small_resnet at 16 px"),
    (["usernets:small_resnet", "--budget-ms", "1", "--device", "host-executorch"],
     "a user's model is timed in ONNX Runtime"),
])
def test_bad_input_is_one_line_and_exit_2(original_ms, capsys, args, message):
    runs, _ = original_ms
    assert main(["compress", *args, "--runs-dir", str(runs), *COMMON]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("autoc: error:") and message in err[0], err


def test_weights_of_another_model_name_the_first_mismatched_key(original_ms, tmp_path, capsys):
    runs, _ = original_ms
    torch.save(load_model("usernets:small_resnet", num_classes=4).state_dict(), tmp_path / "w.pt")
    assert main(["compress", "usernets:small_resnet", "--weights", str(tmp_path / "w.pt"), "--budget-ms", "1",
                 "--runs-dir", str(runs), *COMMON]) == 2
    assert "'10.weight' has shape (4, 128), the model's is (10, 128)" in capsys.readouterr().err


ONNX_CHECK = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x, y = np.load(sys.argv[2]), np.load(sys.argv[3])
predicted = np.concatenate([session.run(None, {session.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(len(x))])
assert not any(name.startswith("autoc") for name in sys.modules)
print(f"{(predicted.argmax(1) == y).mean():.3f}")
"""


def _onnx_accuracy_without_autoc(onnx_path, folder):
    """The exported program's accuracy on the run's validation images, in a process without autoc."""
    from autoc.data.datasets import load_dataset

    data = load_dataset("digits", input_size=16, max_train=300, max_val=100, seed=0)
    np.save(folder / "x.npy", data.val_x.numpy())
    np.save(folder / "y.npy", data.val_y.numpy())
    done = subprocess.run([sys.executable, "-c", ONNX_CHECK, str(onnx_path), str(folder / "x.npy"),
                           str(folder / "y.npy")], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_chosen_policies_that_drift_from_their_estimates_say_how(tmp_path):
    from autoc.modelspace.driver import Chosen

    def chosen(**changes):
        values = dict(budget_ms=2.0, trial=3, accuracy=0.80, predicted_ms=1.0, measured_ms=1.05,
                      policy_path=tmp_path / "best_policy.json", weights_path=None,
                      onnx_path=tmp_path / "compressed.onnx", onnx_accuracy=0.795)
        return Chosen(**values | changes)

    assert chosen().drift() == ()  # -0.5 point, +5%: the model the search scored
    (accuracy,) = chosen(onnx_accuracy=0.77).drift()
    assert accuracy.startswith("budget 2 ms: compressed.onnx scores -3.00 points against the fake-quant model")
    (latency,) = chosen(measured_ms=1.3).drift()
    assert latency.startswith("budget 2 ms: compressed.onnx runs 1.300 ms, +30.0% from the predicted 1.000 ms")
    assert "(limit ±10%; one session: measure again to see its noise)" in latency
    assert len(chosen(onnx_accuracy=0.9, measured_ms=0.5).drift()) == 2
    # the original model kept for a budget: nothing was exported
    assert chosen(trial=None, onnx_path=None, onnx_accuracy=None, measured_ms=None).drift() == ()


def test_a_budget_takes_the_most_accurate_trial_whose_program_measures_within_it():
    """The table predicts, the exported program is what ships: a trial predicted within the budget
    but measured over it is passed over for the next most accurate."""
    from types import SimpleNamespace

    import optuna

    from autoc.latency.check import LatencyCheck
    from autoc.latency.measure import Measurement
    from autoc.modelspace.driver import _measured_best

    def trial(number, accuracy):
        made = optuna.trial.create_trial(value=accuracy, user_attrs={"accuracy": accuracy, "latency_ms": 0.9})
        made.number = number
        return made

    def timed(ms):
        return (None, None, None, LatencyCheck(sessions=(Measurement(ms, ms, ms, ms, 10),) * 2), None)

    trials = [trial(0, 0.70), trial(1, 0.80), trial(2, 0.75), trial(3, 0.60)]
    ctx = SimpleNamespace(options=SimpleNamespace(device="host"),
                          chosen={0: timed(0.8), 1: timed(1.2), 2: timed(0.95), 3: timed(0.5)})
    best, over = _measured_best(trials, ctx, budget_ms=1.0)
    assert (best.number, over) == (2, (1,))  # 0.80 measured 1.2 ms: the 0.75 one (0.95 ms) ships
    best, over = _measured_best(trials, ctx, budget_ms=2.0)
    assert (best.number, over) == (1, ())
    best, over = _measured_best(trials, ctx, budget_ms=0.6)  # none of the three most accurate fits:
    assert (best.number, over) == (0, (1, 2))  # the fastest measured of them, the others named


def test_the_summary_says_when_the_chosen_program_measures_over_its_budget(tmp_path, capsys):
    from autoc.commands.compress import print_summary
    from autoc.modelspace.driver import Chosen, CompressResult

    def result(measured_ms, over):
        chosen = Chosen(budget_ms=1.0, trial=4, accuracy=0.8, predicted_ms=0.95, measured_ms=measured_ms,
                        policy_path=tmp_path / "best_policy.json", weights_path=None,
                        onnx_path=tmp_path / "compressed.onnx", onnx_accuracy=0.8, measured_over=over)
        return CompressResult(study="s", run_dir=tmp_path, original_accuracy=0.81, original_predicted_ms=2.0,
                              original_measured_ms=2.1, floor_ms=0.3, pretrained_here=False, unprunable={},
                              chosen=(chosen,), trials_total=5, trials_this_run=5, seconds_per_trial=1.0,
                              held_out_errors=(), wall_seconds=9.0)

    print_summary(result(1.2, (2, 3)))
    out = capsys.readouterr().out
    assert "passed over (predicted within, measured over 1 ms): trial 2, 3" in out
    assert "over the budget as measured here (1.200 > 1 ms)" in out
    print_summary(result(0.9, ()))
    out = capsys.readouterr().out
    assert "passed over" not in out and "over the budget" not in out
