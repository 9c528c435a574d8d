"""A budget outside the latencies a space's candidates predict on the device says so in one line,
before anything trains: below all of them is refused, above all of them is a warning."""
from autoc.cli import main
from conftest import TINY_FLAGS


def test_a_budget_below_every_candidate_on_the_device_is_refused_with_the_space_range(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["search", "--budget-ms", "2", "--space", "fbnet-cifar", "--device", "pixel3", "--runs-dir", str(runs),
                 "--study", "low", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("autoc: error: no candidate of space 'fbnet-cifar' can meet 2 ms on pixel3")
    assert "predict 2.81-47.1 ms there; raise --budget-ms to at least 2.812" in err[-1]
    assert not any("error" in line for line in err[:-1])  # one error line (beside the profile note)
    assert not (runs / "low").exists() and not (runs / "cache").exists()  # nothing stored, nothing trained


def test_a_budget_above_every_candidate_warns_that_it_does_not_constrain_the_search(tiny_space, runs_dir, capsys):
    code = main(["search", *TINY_FLAGS, "--budget-ms", "1000", "--space", str(tiny_space), "--runs-dir",
                 str(runs_dir), "--study", "high", "--trials", "1"])
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "does not constrain the search" in line]
    assert code == 0 and len(warnings) == 1, err
    assert warnings[0].startswith("autoc: budget 1000 ms is above every candidate of space 'tiny' on host (they "
                                  "predict ")


def test_the_main_commands_budget_falls_within_the_default_space_on_the_default_device(tmp_path):
    from autoc.latency.device import open_latency_model
    from autoc.latency.span import latency_span
    from autoc.search.options import field_default
    from autoc.space import load_space

    assert (field_default("space"), field_default("device")) == ("fbnet-cifar", "pixel3")
    space = load_space(field_default("space"))
    latency = open_latency_model(field_default("device"), runs_dir=tmp_path, space=space, progress=False)
    span = latency_span(space, latency, num_classes=10)
    assert span.fastest_ms < 20 < span.slowest_ms  # `autoc search --budget-ms 20` binds, with nothing to calibrate
    assert not (tmp_path / "devices").exists()


def test_on_the_default_target_a_20_ms_budget_leaves_sampled_candidates_over_it_untrained_and_counted(tmp_path, capsys):
    from autoc.search.stored import open_stored_run

    runs = tmp_path / "runs"
    code = main(["search", "--budget-ms", "20", "--trials", "4", "--teacher-steps", "2", "--finetune-steps", "1",
                 "--max-train", "64", "--max-val", "32", "--noise-trials", "0", "--cpus-per-worker", "1",
                 "--runs-dir", str(runs), "--study", "binds", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    records = open_stored_run(runs / "binds").records()
    over = [r for r in records if r.latency_ms > 20]
    assert over and all(not r.feasible and r.weights is None for r in over)  # priced, never trained
    assert f"4 trials (4 this run), {4 - len(over)} trained within 20 ms, {len(over)} over budget (not trained)" in out
    chosen = [line for line in out.splitlines() if line.startswith("chosen:")]
    assert chosen and float(chosen[0].split(", ")[2].split(" ms")[0]) <= 20
