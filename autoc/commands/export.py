"""`autoc export`: write a trial of a finished search (or the policy an `autoc compress` study chose) as a policy file, ONNX, a torch.export program,
an ExecuTorch program, TorchScript, a state dict, NNI config lists or a per-layer CSV."""
from __future__ import annotations

import argparse
from pathlib import Path

from autoc.commands._drift import report_drift
from autoc.commands._flags import option_flags
from autoc.commands._numbers import amount, count

FORMAT_HELP = (
    "policy (autoc.policy/2 JSON + weights), onnx (int8 QDQ where the policy says; prints predicted vs measured "
    "latency and fake-quant vs ONNX accuracy), pt2 (torch.export program, dynamic batch: the plain-PyTorch format), "
    "executorch (.pte, XNNPACK, int8 where the policy says; needs executorch; prints its accuracy and latency), "
    "torchscript (deprecated by torch: prefer pt2), state-dict, nni (NNI 3.x config lists), csv (per layer)"
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `autoc export` and its options."""
    from autoc.export.formats import FORMATS

    p = sub.add_parser("export", help="export a trial of a search (default: the best) or of a compress study "
                                      "(default: the largest budget's chosen policy) to a file")
    p.add_argument("run", type=Path, help="run directory of the search or compress study (runs/<study>), or a search's "
                                          "study name with --storage")
    p.add_argument("--trial", type=count(0, 3), default=None,
                   help="trial number (default: best feasible trial; compress: a trial chosen for a budget)")
    p.add_argument("--budget", type=amount("0.6"), default=None,
                   help="compress study: export the policy chosen for this budget in ms (default: the largest)")
    p.add_argument("--format", default="policy", choices=list(FORMATS), help=FORMAT_HELP)
    p.add_argument("-o", "--output", type=Path, default=None, help="output file (default runs/<study>/export/trial-N.<ext>)")
    p.add_argument("--force", action="store_true", help="replace output files that exist")
    p.add_argument("--storage", dest="storage.url", default=None, help="Optuna storage URL when the study is not in runs/<study>/study.db")
    p.add_argument("--study", dest="storage.study", default=None, help="study name in --storage (default: the run directory's name)")
    p.add_argument("--no-check", action="store_true", help="onnx, executorch: skip the latency measurement and accuracy comparison")
    p.add_argument("--allow-drift", action="store_true",
                   help="onnx, executorch: exit 0 even when the export's accuracy is over 1 point (onnx: or its host "
                   "latency over 10%%) from what the search scored (the file is written either way)")
    p.add_argument("--int8-weights", choices=["int8", "uint8"], default=None,
                   help="onnx: store int8 weights as int8, or as uint8 with zero point 128 (same values; for x86 CPUs "
                   "without VNNI, whose int8 kernels saturate); default: as the device's latency profile was measured")
    p.set_defaults(handler=run, option_flags=option_flags(p))


def run(args: argparse.Namespace) -> int:
    """Export a trial of a stored search and print the files written (and the ONNX check)."""
    from autoc.export.executorch import ExecutorchCheck
    from autoc.export.exporter import ExportRequest, export_trial
    from autoc.export.onnx_candidate import format_check

    result = export_trial(
        ExportRequest(
            target=args.run,
            format=args.format,
            trial=args.trial,
            budget=args.budget,
            output=args.output,
            force=args.force,
            storage=getattr(args, "storage.url"),
            study=getattr(args, "storage.study"),
            check=not args.no_check,
            int8_weights=args.int8_weights,
        )
    )
    print(f"trial {result.trial} -> {', '.join(str(p) for p in result.paths)}")
    for note in result.notes:
        print(f"note: {note}")
    if isinstance(result.check, ExecutorchCheck):
        print(format_executorch_check(result.check))
    elif result.check is not None:
        print(format_check(result.check))
    return report_drift("export", result.drift, allowed=args.allow_drift, refusal=(
        f"{result.paths[0]} is written but is not the model the search scored; pass --allow-drift to accept it"))


def _profile_words(check) -> str:
    runtimes = {"onnxruntime": "an ONNX Runtime profile's", "executorch": "an ExecuTorch profile's"}
    return runtimes.get(check.profile_runtime, "a profile's")


def format_executorch_check(check) -> str:
    """A small table: the trial's predicted latency beside the program's, fake-quant beside ExecuTorch accuracy."""
    measured = check.measured
    error = check.latency_error
    if error is not None:  # this host's ExecuTorch profile: its figure (p10) against the prediction
        latency = (f"{'latency, ms (p10, ' + str(measured.threads) + ' thread)':<38} {check.predicted_ms:>16.3f} "
                   f"{measured.figure_ms:>11.3f} {100 * error:>+10.1f}%")
    else:
        latency = (f"{'latency, ms (median, ' + str(measured.threads) + ' thread)':<38} {check.predicted_ms:>16.3f} "
                   f"{measured.median_ms:>11.3f} {'n/a':>11}")
    lines = [f"{'figure':<38} {'search estimate':>16} {'ExecuTorch':>11} {'difference':>11}", latency]
    if check.executorch_accuracy is not None and check.fake_quant_accuracy is not None:
        lines.append(f"{'accuracy, validation split':<38} {check.fake_quant_accuracy:>16.4f} "
                     f"{check.executorch_accuracy:>11.4f} {check.accuracy_gap_points:>+8.2f} pt")
    notes = [
        f"measured in the ExecuTorch runtime (XNNPACK) on this host: p10 {measured.p10_ms:.3f} ms, "
        f"p90 {measured.p90_ms:.3f} ms over {measured.repeats} runs after warm-up",
        (f"the prediction is this host's ExecuTorch profile's (device {check.device!r}): checked within ±10%"
         if error is not None else
         f"the prediction is {_profile_words(check)} (device {check.device!r}), not this host's ExecuTorch "
         "profile's, so latency is shown, not checked"),
        f"stored search estimate of accuracy {check.estimate_accuracy:.4f}"
        + (f", validation split {check.val_samples} images" if check.val_samples else ""),
        f"int8 layers: {', '.join(check.int8_layers) if check.int8_layers else 'none (fp32 program)'}",
    ]
    if check.executorch_accuracy is None:
        notes.append("accuracy not compared: the study does not record how its data was loaded")
    return "\n".join(lines + [f"  ({note})" for note in notes])
