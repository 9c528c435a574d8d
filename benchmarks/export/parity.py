"""Exported model vs the search's estimates, for the best candidate of a small CIFAR-10 search.

Runs a small real search (mbv2-cifar, CIFAR-10 JPEG zip, host CPU as device), exports its
best candidate to ONNX (pruned layers physically smaller, int8 layers as QDQ calibrated on
training images), and prints a table: predicted vs measured latency on this host (ONNX
Runtime, 1 thread, median of 400 runs after warm-up, repeated in rounds so drift is seen),
and fake-quant vs ONNX accuracy on the search's validation split.

    python -m benchmarks.export.parity --data ../shared/data/cifar10-jpeg.zip

Everything goes under --runs-dir (default /tmp/autoc-bench-export; a fresh host latency
profile is measured there first). The search dominates the time: 73 min on the shared
2-core development machine while other jobs kept its load average near 10. Latency figures
are only comparable when the profile and the export are measured under the same load.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

from autoc.cli import main as autoc_main
from autoc.export.exporter import ExportRequest, export_trial
from autoc.export.onnx_candidate import format_check, input_shape
from autoc.export.stored_trial import open_trial
from autoc.latency.check import measure_exported
from autoc.latency.device import open_latency_model
from autoc.search.stored import open_stored_run

from benchmarks.common import record_result

ROUNDS = 3  # latency rounds against a profile measured after the search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared/data/cifar10-jpeg.zip")
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/autoc-bench-export"))
    parser.add_argument("--study", default="cifar-export")
    parser.add_argument("--budget-ms", type=float, default=1.5)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--max-train", type=int, default=2000)
    parser.add_argument("--max-val", type=int, default=500)
    parser.add_argument("--teacher-steps", type=int, default=150)
    parser.add_argument("--finetune-steps", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    start = time.perf_counter()
    code = autoc_main([
        "search", "--budget-ms", str(args.budget_ms), "--space", "mbv2-cifar", "--device", "host",
        "--dataset", "cifar10", "--data-dir", str(args.data),
        "--trials", str(args.trials), "--max-train", str(args.max_train), "--max-val", str(args.max_val),
        "--teacher-steps", str(args.teacher_steps), "--finetune-steps", str(args.finetune_steps),
        "--runs-dir", str(args.runs_dir), "--study", args.study, "--no-progress",
    ])
    if code != 0:
        return code
    search_s = time.perf_counter() - start
    run_dir = args.runs_dir / args.study
    output = run_dir / "export" / "best.onnx"
    result = export_trial(ExportRequest(target=run_dir, format="onnx", output=output, force=True))
    check = result.check
    print(f"\nsearch {search_s:.0f} s; best trial {result.trial} exported to {output} ({output.stat().st_size / 1024:.1f} kB)")
    print(format_check(check))

    # The search's prediction comes from a profile measured at the start; on a shared machine
    # the load may have changed since. A profile measured now, next to the model, compares
    # like with like.
    stored = open_trial(open_stored_run(run_dir), trial=result.trial)
    candidate = stored.policy.candidate
    fresh_dir = args.runs_dir / "fresh-profile"
    shutil.rmtree(fresh_dir, ignore_errors=True)
    fresh = open_latency_model("host", runs_dir=fresh_dir, space=stored.space, progress=False)
    predicted_now = fresh.predict(candidate.netspec(), candidate.policy)
    medians = [measure_exported(output.read_bytes(), input_shape(candidate)).figure_ms for _ in range(ROUNDS)]
    overall = statistics.median(medians)
    print(
        f"re-measured: profile calibrated now predicts {predicted_now:.3f} ms; exported model "
        f"{', '.join(f'{m:.3f}' for m in medians)} ms (median of {ROUNDS} rounds {overall:.3f} ms, "
        f"{100 * (overall / predicted_now - 1):+.1f}%)"
    )
    print(f"total {time.perf_counter() - start:.0f} s")
    record_result("export.parity", f"cifar10-train{args.max_train}-val{args.max_val}-trials{args.trials}",
                  title=f"ONNX export of the best of a {args.trials}-trial CIFAR-10 search: parity with the search",
                  figures={"fake-quant accuracy": check.fake_quant_accuracy, "exported ONNX accuracy": check.onnx_accuracy,
                           "accuracy gap (points)": check.accuracy_gap_points,
                           "measured ms (p10 figure, median of rounds)": overall, "predicted ms by a profile measured now": predicted_now,
                           "measured vs predicted now (%)": 100 * (overall / predicted_now - 1),
                           "measured vs the prediction stored at search time (%)": 100 * check.latency_error})
    return 0


if __name__ == "__main__":
    sys.exit(main())
