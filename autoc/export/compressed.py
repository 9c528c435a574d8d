"""`autoc export` of an `autoc compress` study: the policy chosen for a budget (or a chosen trial)
as a model-policy file, ONNX (with the parity check), a torch.export program, an ExecuTorch program
(checked as a search's: autoc.export.compressed_executorch), TorchScript, a state dict or a
per-layer CSV. ``export_trial`` sends compress studies here; the writers are its own.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from torch import nn

from autoc.errors import PolicyError
from autoc.export.exporter import (OUTPUT_KINDS, ExportRequest, ExportResult, _torch_bytes, pt2_bytes,
                                   torchscript_bytes)
from autoc.export.formats import FORMATS
from autoc.export.onnx_candidate import OnnxCheck, onnx_accuracy
from autoc.latency.check import measure_exported
from autoc.files import MODEL_POLICY_JSON, TORCH, claim_outputs, write_bytes_atomic
from autoc.modelspace.driver import CALIBRATION_IMAGES, Chosen
from autoc.modelspace.export import export_compressed
from autoc.modelspace.reference import load_model
from autoc.modelspace.stored import StoredCompress, open_compress_study

# What a compressed user model can be written as; nni describes autoc's own networks.
COMPRESS_FORMATS = ("policy", "onnx", "pt2", "executorch", "torchscript", "state-dict", "csv")


def export_compress_trial(request: ExportRequest) -> ExportResult:
    """Write the chosen policy of a compress study (``request.budget``'s, ``request.trial``'s, or the
    largest budget's) in ``request.format``."""
    if request.format not in COMPRESS_FORMATS:
        raise PolicyError(f"format {request.format!r} does not apply to an autoc compress study; use one of "
                          f"{', '.join(COMPRESS_FORMATS)}", fields=("format",))
    study = open_compress_study(Path(request.target))
    chosen = study.choose(budget_ms=request.budget, trial=request.trial)
    output = request.output or study.run_dir / "export" / f"trial-{chosen.trial}{FORMATS[request.format]}"
    if request.format == "policy":
        return _export_policy(study, chosen, output, force=request.force)
    claim_outputs({output: OUTPUT_KINDS[request.format]}, force=request.force)
    model = study.build_model(chosen)
    check, note = None, None
    if request.format == "onnx":
        data, check = _onnx(study, chosen, model, check=request.check, int8_weights=request.int8_weights)
    elif request.format == "executorch":
        from autoc.export.compressed_executorch import export_executorch

        data, check, note = export_executorch(study, chosen, model, check=request.check)
    elif request.format == "pt2":
        data = pt2_bytes(model, study.input_shape())
    elif request.format == "torchscript":
        data = torchscript_bytes(model, study.input_shape())
    elif request.format == "state-dict":
        data = _torch_bytes(model.state_dict())
    else:
        data = _layer_csv(study, chosen, model).encode()
    return ExportResult(trial=chosen.trial, paths=(write_bytes_atomic(output, data),), check=check,
                        notes=(note,) if note else ())


def _export_policy(study: StoredCompress, chosen: Chosen, output: Path, *, force: bool) -> ExportResult:
    """The chosen policy's autoc.model-policy file and, beside it, its fine-tuned weights."""
    base = output.name[: -len(".policy.json")] if output.name.endswith(".policy.json") else output.stem
    weights = output.with_name(f"{base}.weights.pt")
    claim_outputs({output: MODEL_POLICY_JSON, weights: TORCH}, force=force)
    study.build_model(chosen)  # the weights fit the policy, or one line now
    write_bytes_atomic(weights, Path(chosen.weights_path).read_bytes())
    write_bytes_atomic(output, Path(chosen.policy_path).read_bytes())
    return ExportResult(trial=chosen.trial, paths=(output, weights))


def _onnx(study: StoredCompress, chosen: Chosen, model: nn.Module, *, check: bool,
          int8_weights: str | None) -> tuple[bytes, OnnxCheck | None]:
    """The ONNX program as `autoc compress` wrote it (same calibration images), and its check."""
    from autoc.onnx.int8 import host_int8_weights

    data = study.data()
    scheme = int8_weights or host_int8_weights()
    file = study.policy_file(chosen)
    program = export_compressed(model, calibration=data.train_x[:CALIBRATION_IMAGES].numpy(),
                                preprocessing=file.preprocessing or data.preprocessing, int8_weights=scheme)
    if not check:
        return program, None
    from autoc.training.loop import accuracy

    return program, OnnxCheck(
        device=study.options.device,
        predicted_ms=chosen.predicted_ms,
        measured=measure_exported(program, study.input_shape(), threads=study.options.threads),
        estimate_accuracy=chosen.accuracy,
        fake_quant_accuracy=accuracy(model, data.val_x, data.val_y),
        onnx_accuracy=onnx_accuracy(program, data.val_x, data.val_y),
        val_samples=int(data.val_x.shape[0]),
        int8_weights=scheme,
    )


CSV_COLUMNS = ("layer", "type", "in_channels", "in_kept", "out_channels", "out_kept", "precision", "weight_bits",
               "act_bits", "sparsity")


def _layer_csv(study: StoredCompress, chosen: Chosen, model: nn.Module) -> str:
    """One row per conv/linear layer: its channels in the original model and kept, its precision."""
    file = study.policy_file(chosen)
    original = dict(load_model(file.reference.model, num_classes=file.reference.num_classes).named_modules())
    layers = dict(file.policy.layers.layers)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        before = original[name]
        policy = layers.get(name)
        conv = isinstance(module, nn.Conv2d)
        writer.writerow((
            name, "conv" if conv else "linear",
            before.in_channels if conv else before.in_features, module.in_channels if conv else module.in_features,
            before.out_channels if conv else before.out_features, module.out_channels if conv else module.out_features,
            policy.precision if policy is not None else "fp32",
            policy.weight_bits if policy is not None else 32,
            policy.act_bits if policy is not None else 32,
            f"{policy.sparsity:g}" if policy is not None else "0",
        ))
    return buffer.getvalue()
