"""What autoc hands over, checked where it lands: the chosen model of finished studies in each
exported format, run by that format's runtime in a process that does not import autoc.

    python -m benchmarks.export.handover --search runs/<digits study> --search runs/<cifar study> \\
        --compress runs/<compress study>

Per search study: the best trial exported as ONNX (int8 QDQ where the policy says, weights stored as
the device profile measured them) and TorchScript; each scored on the study's validation split by
``runtime_check.py`` (onnxruntime with every graph optimisation, as deployed; torch.jit), against the
accuracy estimate the search stored (goal: within 0.5 point). The ONNX model is also timed there as
calibration times a network (two sessions, p10) against the search's prediction and against a host
profile calibrated now, beside the model, under the same load (goal: within ±10%; the sessions'
spread is the measurement's own noise). Per compress study: each budget's compressed ONNX against
the estimate and prediction the study stored.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autoc.export.exporter import ExportRequest, export_trial, reload_data
from autoc.export.stored_trial import open_trial
from autoc.latency.calibrate import NOISY_SESSION_SPREAD
from autoc.latency.device import open_latency_model
from autoc.search.stored import open_stored_run

from benchmarks.common import record_result

RUNTIME_CHECK = Path(__file__).with_name("runtime_check.py")
ACCURACY_GOAL_POINTS = 0.5
LATENCY_GOAL = 0.10


def in_runtime(fmt: str, model: Path, data: Path, *, latency: bool) -> dict:
    """runtime_check.py's JSON, run with this interpreter in a fresh process."""
    command = [sys.executable, str(RUNTIME_CHECK), "--format", fmt, "--model", str(model), "--data", str(data)]
    out = subprocess.run(command + (["--latency"] if latency else []), capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["imported_autoc"]:
        raise SystemExit(f"{RUNTIME_CHECK.name} imported autoc; it must check the file without it")
    return result


def save_split(path: Path, x, y) -> Path:
    np.savez(path, x=x.numpy().astype(np.float32), y=y.numpy())
    return path


def points(difference: float) -> float:
    """An accuracy difference in points, to the precision a validation split can show."""
    return round(100 * difference, 2) + 0.0  # + 0.0: no "-0.0"


def latency_figures(measured: dict, predicted: float, prefix: str) -> dict:
    error = 100 * (measured["figure_ms"] / predicted - 1)
    return {f"{prefix} predicted ms": predicted, f"{prefix} error %": error,
            f"{prefix} within ±{100 * LATENCY_GOAL:g}%": abs(error) <= 100 * LATENCY_GOAL}


def search_study(run_dir: Path, work: Path, *, fresh_profiles: Path) -> tuple[str, str, dict, dict]:
    """(key, title, figures, detail) of a search study's best trial."""
    stored = open_trial(open_stored_run(run_dir), trial=None)
    data = reload_data(stored)
    if data is None:
        raise SystemExit(f"{run_dir}: the study does not record how its data was loaded")
    split = save_split(work / f"{run_dir.name}-val.npz", data.val_x, data.val_y)
    onnx_path, ts_path = work / f"{run_dir.name}.onnx", work / f"{run_dir.name}.pt"
    result = export_trial(ExportRequest(target=run_dir, format="onnx", output=onnx_path, force=True))
    export_trial(ExportRequest(target=run_dir, format="torchscript", output=ts_path, force=True))
    onnx = in_runtime("onnx", onnx_path, split, latency=True)
    torchscript = in_runtime("torchscript", ts_path, split, latency=False)
    # A profile measured now, beside the model: the search's was measured under another load.
    fresh = open_latency_model("host", runs_dir=fresh_profiles, space=stored.space, progress=False)
    candidate = stored.policy.candidate
    predicted_now = fresh.predict(candidate.netspec(), candidate.policy)
    estimate = stored.record.accuracy
    latency = onnx["latency"]
    figures = {
        "dataset": stored.run.run_options.get("dataset"), "trial": result.trial,
        "validation images": onnx["samples"],
        "search estimate (fake-quant) accuracy": estimate,
        "ONNX Runtime accuracy": onnx["accuracy"],
        "ONNX gap (points)": points(onnx["accuracy"] - estimate),
        "TorchScript accuracy": torchscript["accuracy"],
        "TorchScript gap (points)": points(torchscript["accuracy"] - estimate),
        f"accuracy within {ACCURACY_GOAL_POINTS} point (both formats)": all(
            abs(100 * (r["accuracy"] - estimate)) <= ACCURACY_GOAL_POINTS for r in (onnx, torchscript)),
        "int8 weights stored as": result.check.int8_weights,
        "measured ms (ONNX Runtime, p10, 2 sessions)": latency["figure_ms"],
        "measured p10-p90 ms": f"{latency['p10_ms']:.3f}-{latency['p90_ms']:.3f}",
        "session spread %": 100 * latency["session_spread"],
        "noisy": latency["session_spread"] > NOISY_SESSION_SPREAD,
        **latency_figures(latency, predicted_now, "profile measured now:"),
        **latency_figures(latency, stored.record.latency_ms, "search-time profile:"),
    }
    title = f"search study {run_dir.name!r} ({figures['dataset']})"
    return f"search-{run_dir.name}", title, figures, {"onnx": onnx, "torchscript": torchscript}


def compress_study(run_dir: Path, work: Path) -> tuple[str, str, dict, dict]:
    """(key, title, figures, detail) of a compress study: every budget's compressed ONNX."""
    from autoc.data.datasets import load_dataset
    from autoc.modelspace.driver import stored_options, stored_result

    options, result = stored_options(run_dir), stored_result(run_dir)
    if result is None:
        raise SystemExit(f"{run_dir}: no finished autoc compress run stored there")
    data = load_dataset(options.dataset, data_dir=options.data_dir, input_size=options.input_size, seed=options.seed,
                        max_train=options.max_train, max_val=options.max_val)
    split = save_split(work / f"{run_dir.name}-val.npz", data.val_x, data.val_y)
    figures: dict = {"model": options.model, "dataset": options.dataset, "validation images": int(len(data.val_y)),
                     "original accuracy": result.original_accuracy}
    detail = {}
    for chosen in result.chosen:
        if chosen.onnx_path is None:
            continue
        onnx = in_runtime("onnx", Path(chosen.onnx_path), split, latency=True)
        latency = onnx["latency"]
        tag = f"{chosen.budget_ms:g} ms:"
        figures |= {
            f"{tag} estimate accuracy": chosen.accuracy,
            f"{tag} ONNX Runtime accuracy": onnx["accuracy"],
            f"{tag} ONNX gap (points)": points(onnx["accuracy"] - chosen.accuracy),
            f"{tag} measured ms": latency["figure_ms"],
            f"{tag} session spread %": 100 * latency["session_spread"],
            **latency_figures(latency, chosen.predicted_ms, tag),
        }
        detail[f"{chosen.budget_ms:g}"] = onnx
    title = f"compress study {run_dir.name!r} ({options.model} on {options.dataset})"
    return f"compress-{run_dir.name}", title, figures, detail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", type=Path, action="append", default=[], help="run directory of a search study")
    parser.add_argument("--compress", type=Path, action="append", default=[], help="run directory of a compress study")
    parser.add_argument("--work", type=Path, default=None, help="where exports and splits go (default: a temp dir)")
    args = parser.parse_args(argv)
    if not args.search and not args.compress:
        parser.error("give at least one --search or --compress run directory")
    work = args.work or Path(tempfile.mkdtemp(prefix="autoc-handover-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    fresh = work / "fresh-profile"
    if fresh.exists():  # "measured now" means now: never a profile left by an earlier run
        shutil.rmtree(fresh)
    studies = [(search_study, d, {"fresh_profiles": fresh}) for d in args.search]
    studies += [(compress_study, d, {}) for d in args.compress]
    for measure, run_dir, extra in studies:
        key, title, figures, detail = measure(run_dir, work, **extra)
        print(f"\n{title}")
        for name, value in figures.items():
            print(f"  {name:<52} {value:.4g}" if isinstance(value, float) else f"  {name:<52} {value}")
        record_result("export.handover", key, figures=figures, runtimes=detail,
                      title=f"Handover of the {title}: the estimate against each exported format in its runtime")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
