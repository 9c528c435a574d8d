"""`autoc export`: one trained trial of a stored study -> a file in the asked format.

Every output of one export is claimed (refused if it exists, unless forced) before any is
written, and each is written atomically.
"""
from __future__ import annotations

import io
import json
import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from autoc.errors import DeviceError, PolicyError
from autoc.arch.builder import AutocNet
from autoc.compress.quant import ActivationQuant, missing_ranges, observe_missing_ranges
from autoc.export.executorch import ExecutorchCheck
from autoc.export.formats import FORMATS
from autoc.export.layer_table import layer_rows, rows_to_csv
from autoc.export.nni_config import nni_config
from autoc.export.onnx_candidate import (
    OnnxCheck,
    calibration_images,
    candidate_onnx,
    input_shape,
    onnx_accuracy,
)
from autoc.files import CSV, JSON, ONNX, POLICY_JSON, PTE, TORCH, claim_outputs, write_bytes_atomic
from autoc.latency.check import measure_exported
from autoc.policy.file import policy_json
from autoc.export.stored_trial import StoredTrial, open_trial
from autoc.modelspace.stored import is_compress_run
from autoc.search.stored import open_stored_run


logger = logging.getLogger(__name__)

# What each format's file is: --force replaces only a file of that kind (autoc.files).
OUTPUT_KINDS = {"policy": POLICY_JSON, "onnx": ONNX, "pt2": TORCH, "executorch": PTE, "torchscript": TORCH,
                "state-dict": TORCH, "nni": JSON, "csv": CSV}


@dataclass(frozen=True)
class ExportRequest:
    """What to export: which stored trial, in which format, to which file."""

    target: Path  # runs/<study>, or the study name with storage
    format: str = "policy"
    trial: int | None = None  # None: the best feasible trial (compress study: the largest budget's chosen trial)
    budget: float | None = None  # compress study: export the policy chosen for this budget (ms)
    output: Path | None = None
    force: bool = False
    storage: str | None = None
    study: str | None = None
    check: bool = True  # onnx, executorch: measure latency and compare accuracy
    int8_weights: str | None = None  # onnx: how int8 weights are stored; None: as the device's profile measured


@dataclass(frozen=True)
class ExportResult:
    """The exported trial, the files written and, for ONNX and ExecuTorch, the latency and accuracy check."""

    trial: int
    paths: tuple[Path, ...]
    check: OnnxCheck | ExecutorchCheck | None = None
    notes: tuple[str, ...] = ()  # one line each, said beside the result (e.g. the profile's runtime differs)

    @property
    def drift(self) -> tuple[str, ...]:
        """How the written file departs from the model the search scored (empty: it does not)."""
        return self.check.drift() if self.check is not None else ()


def export_trial(request: ExportRequest) -> ExportResult:
    """Write a stored trial in ``request.format`` (the best feasible trial unless ``request.trial`` is given)."""
    if request.format not in FORMATS:
        raise PolicyError(f"format {request.format!r} is unknown; use one of {', '.join(FORMATS)}", fields=("format",))
    if request.storage is None and is_compress_run(request.target):  # the one place the two kinds part
        from autoc.export.compressed import export_compress_trial

        return export_compress_trial(request)
    if request.budget is not None:
        raise PolicyError(f"budget picks among the budgets of an autoc compress study; {request.target} is a search "
                          "study (one budget): name its trial instead", fields=("budget", "trial"))
    run = open_stored_run(request.target, storage=request.storage, study=request.study)
    stored = open_trial(run, trial=request.trial)
    output = request.output or run.run_dir / "export" / f"trial-{stored.record.number}{FORMATS[request.format]}"
    if request.format == "policy":
        return _export_policy(stored, output, force=request.force)
    claim_outputs({output: OUTPUT_KINDS[request.format]}, force=request.force)
    check = None
    note = runtime_note(stored, request.format)
    if request.format == "onnx":
        data, check = _onnx(stored, check=request.check, int8_weights=request.int8_weights)
    elif request.format == "pt2":
        data = pt2_bytes(trial_model(stored), input_shape(stored.policy.candidate))
    elif request.format == "executorch":
        data, check = _executorch(stored, check=request.check)
    elif request.format == "torchscript":
        data = torchscript_bytes(trial_model(stored), input_shape(stored.policy.candidate))
    elif request.format == "state-dict":
        data = _torch_bytes(trial_model(stored).state_dict())
    elif request.format == "nni":
        data = (json.dumps(nni_config(stored.policy.candidate), indent=2) + "\n").encode()
    else:
        data = rows_to_csv(layer_rows(stored.policy.candidate, _latency_model(stored))).encode()
    return ExportResult(trial=stored.record.number, paths=(write_bytes_atomic(output, data),), check=check,
                        notes=(note,) if note else ())


# The runtime each format's file runs in, where autoc measures it (others: no latency figure of its own).
FORMAT_RUNTIMES = {"onnx": "onnxruntime", "executorch": "executorch"}


def profile_runtime(stored: StoredTrial) -> str | None:
    """The runtime the study's device profile was measured in; None where there is no readable
    profile or it does not know (profiles from published data)."""
    return device_runtime(stored.run.device, runs_dir=stored.run.runs_dir)


def device_runtime(device: str, *, runs_dir: Path) -> str | None:
    """The runtime the profile of ``device`` was measured in (None: no readable profile, or unknown)."""
    from autoc.latency.device import find_profile
    from autoc.latency.profile import load_profile

    found = find_profile(device, runs_dir=runs_dir)
    if found is None:
        return None
    try:
        runtime = load_profile(found[0]).identity.runtime
    except (OSError, DeviceError):
        return None
    return None if runtime == "unknown" else runtime


def runtime_note(stored: StoredTrial, format: str) -> str | None:
    """One line when the study's latency profile was measured in another runtime than ``format``'s file
    runs in (allowed: the file is written; its latency is then not checked against the prediction)."""
    runtime = profile_runtime(stored) if format in FORMAT_RUNTIMES else None
    return runtimes_differ_note(device=stored.run.device, runtime=runtime, format=format)


def runtimes_differ_note(*, device: str, runtime: str | None, format: str) -> str | None:
    """The line of :func:`runtime_note` for a study whose latency prediction comes from ``device``'s
    profile, measured in ``runtime`` (None: unknown; no note)."""
    export_runtime = FORMAT_RUNTIMES.get(format)
    if runtime is None or export_runtime is None or runtime == export_runtime:
        return None
    return (f"the study's latency profile (device {device!r}) was measured in {runtime}, this "
            f"--format {format} file runs in {export_runtime}: the runtimes differ (allowed), so its latency is "
            "not checked against the prediction")


def _export_policy(stored: StoredTrial, output: Path, *, force: bool) -> ExportResult:
    """The policy file and, beside it, the weights it names (a relative path)."""
    base = output.name[: -len(".policy.json")] if output.name.endswith(".policy.json") else output.stem
    weights = output.with_name(f"{base}.weights.pt")
    claim_outputs({output: POLICY_JSON, weights: TORCH}, force=force)
    policy = replace(stored.policy, weights=weights.name)
    if policy.preprocessing is None:  # a study from before it was stored: the data says it again
        data = reload_data(stored)
        policy = replace(policy, preprocessing=data.preprocessing if data is not None else None)
    write_bytes_atomic(weights, stored.weights_path.read_bytes())
    write_bytes_atomic(output, policy_json(policy).encode())
    return ExportResult(trial=stored.record.number, paths=(output, weights))


PT2_EXAMPLE_BATCH = 2  # torch.export specialises a dimension of size 1, so the example batch is 2


def pt2_bytes(model: torch.nn.Module, shape: tuple[int, ...]) -> bytes:
    """A torch.export program of ``model`` in eval mode for inputs shaped ``shape`` (one image), batch
    dimension dynamic: its fake quantisers
    are calibrated, so the program holds their frozen ranges (see autoc.compress.quant.FakeQuant)."""
    model.eval().requires_grad_(False)  # fake-quantise ops of weights that need no gradient export as they are
    unobserved = [name for name, module in model.named_modules()
                  if isinstance(module, ActivationQuant) and not bool(module.observed)]
    if unobserved:
        raise PolicyError(f"fake quantisers {unobserved} have never seen data, so they have no range to export; "
                          "export a trained trial")
    example = torch.zeros((PT2_EXAMPLE_BATCH, *shape[1:]))
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


# torch deprecates TorchScript; the torchscript format exists for users who ask for it (--format pt2 is
# the recommended one), so its notices about itself are not repeated to them.
_TORCHSCRIPT_NOTICE = r"`torch\.jit\.(trace|trace_method|save)` is deprecated"


def torchscript_bytes(model: torch.nn.Module, shape: tuple[int, ...]) -> bytes:
    """Traced in eval mode on inputs shaped ``shape``: fake quantisers are calibrated, so tracing freezes their ranges."""
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=_TORCHSCRIPT_NOTICE, category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # the frozen quantiser state
        traced = torch.jit.trace(model, torch.zeros(shape))
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)  # still the format other programs load without autoc
    return buffer.getvalue()


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _onnx(stored: StoredTrial, *, check: bool, int8_weights: str | None) -> tuple[bytes, OnnxCheck | None]:
    candidate = stored.policy.candidate
    model = stored.build_model()
    data = reload_data(stored)
    calibration = calibration_images(data.train_x) if data is not None else None
    scheme = int8_weights or device_int8_weights(stored)
    preprocessing = stored.policy.preprocessing or (data.preprocessing if data is not None else None)
    if preprocessing is None:
        logger.warning("study %r records neither its preprocessing nor how it loaded its data: the ONNX model's "
                       "metadata has no preprocessing (mean, std, input size); feed it as the search did",
                       stored.run.name)
    onnx_bytes = candidate_onnx(model, candidate, calibration=calibration, int8_weights=scheme,
                                preprocessing=preprocessing)
    if not check:
        return onnx_bytes, None
    from autoc.training.loop import accuracy

    return onnx_bytes, OnnxCheck(
        device=stored.run.device,
        predicted_ms=stored.record.latency_ms,
        measured=measure_exported(onnx_bytes, input_shape(candidate)),
        estimate_accuracy=stored.record.accuracy,
        fake_quant_accuracy=accuracy(model, data.val_x, data.val_y) if data is not None else None,
        onnx_accuracy=onnx_accuracy(onnx_bytes, data.val_x, data.val_y) if data is not None else None,
        val_samples=int(data.val_x.shape[0]) if data is not None else 0,
        int8_weights=scheme,
    )


def _executorch(stored: StoredTrial, *, check: bool) -> tuple[bytes, ExecutorchCheck | None]:
    from autoc.export.executorch import (
        executorch_accuracy, executorch_api, executorch_program, int8_layer_bits, measure_executorch,
    )

    executorch_api()  # missing: one line naming the install, before any work
    candidate = stored.policy.candidate
    model = trial_model(stored)
    data = reload_data(stored)
    calibration = calibration_images(data.train_x) if data is not None else None
    program = executorch_program(model, candidate, calibration=calibration)
    if not check:
        return program, None
    from autoc.training.loop import accuracy

    from autoc.latency.profile import host_device

    runtime = profile_runtime(stored)
    return program, ExecutorchCheck(
        profile_runtime=runtime,
        latency_comparable=stored.run.device == host_device("executorch") and runtime == "executorch",
        device=stored.run.device,
        predicted_ms=stored.record.latency_ms,
        measured=measure_executorch(program, input_shape(candidate)),
        estimate_accuracy=stored.record.accuracy,
        fake_quant_accuracy=accuracy(model, data.val_x, data.val_y) if data is not None else None,
        executorch_accuracy=executorch_accuracy(program, data.val_x, data.val_y) if data is not None else None,
        val_samples=int(data.val_x.shape[0]) if data is not None else 0,
        int8_layers=tuple(int8_layer_bits(candidate)),
    )


def trial_model(stored: StoredTrial) -> AutocNet:
    """The trial's model; quantisers its weights predate (they load unobserved) observe their ranges on the
    calibration images, as the ONNX export has them observe, so every format freezes the same ranges."""
    model = stored.build_model()
    if missing_ranges(model):
        data = reload_data(stored)
        if data is not None:  # else the formats that freeze ranges refuse the unobserved ones
            observe_missing_ranges(model, torch.from_numpy(calibration_images(data.train_x)))
    return model


def device_int8_weights(stored: StoredTrial) -> str:
    """How the study's device stores int8 weights: as its profile was measured (so the export runs
    the kernels the latency prediction timed), else as this host would."""
    from autoc.latency.device import find_profile
    from autoc.latency.profile import load_profile
    from autoc.onnx.int8 import host_int8_weights

    found = find_profile(stored.run.device, runs_dir=stored.run.runs_dir)
    if found is not None:
        try:
            return load_profile(found[0]).identity.int8_weights
        except (OSError, DeviceError):  # unreadable: the check below still compares accuracy
            pass
    return host_int8_weights()


def reload_data(stored: StoredTrial):
    """The search's data split, as `autoc search` loaded it and resized to the trial's resolution;
    None for studies that did not record it."""
    from autoc.data.datasets import load_dataset, resized

    options = stored.run.run_options
    if not options:
        return None
    return resized(load_dataset(
        options["dataset"],
        data_dir=options.get("data_dir"),
        input_size=stored.space.input_size,
        seed=options.get("seed", 0),
        max_train=options.get("max_train"),
        max_val=options.get("max_val"),
    ), stored.policy.candidate.arch.input_size)


def _latency_model(stored: StoredTrial):
    from autoc.latency.device import open_latency_model

    return open_latency_model(stored.run.device, runs_dir=stored.run.runs_dir, space=stored.space, progress=False)
