"""Search per-layer compression policies for a user's model under one or more latency budgets.

One Optuna study per run directory (SQLite, resumable): each trial picks a keep ratio per channel
group, fp32/int8 per conv and linear layer (the final classifier stays fp32:
``ModelStructure.int8_layers``), weight bits per int8 layer and a sparsity per layer (where the
options offer more than one), is timed by the model's layer table (on the host: units measured
here as they first occur; on another device: the table imported from the model's calibration
pack, ``autoc.modelspace.pack``), sized (``policy_size_bytes``) and, when it fits the largest
budget and the size budget, scored by a short distillation from the original model. Each budget
then gets the most accurate trial that fits it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import optuna
import torch

from autoc.arch.policy import LayerPolicy
from autoc.data.datasets import DatasetSplit, load_dataset
from autoc.errors import BudgetError, DeviceError, ModelError, OptionError, StorageError
from autoc.files import save_torch_atomic, write_bytes_atomic, write_text_atomic
from autoc.latency.check import measure_exported
from autoc.latency.device import check_device_name
from autoc.latency.profile import HOST, host_runtime
from autoc.modelspace.compress import ModelPolicy
from autoc.modelspace.export import export_compressed, onnx_accuracy
from autoc.modelspace.estimate import estimate_policy, original_logits
from autoc.modelspace.groups import ModelStructure, analyse
from autoc.modelspace.latency import (INT8_LAYER, Layer, LayerTable, calibrate, calibration_policies,
                                      measure_networks, model_layers, policy_layers, policy_size_bytes)
from autoc.modelspace.pack import device_table
from autoc.modelspace.policy_file import ModelPolicyFile, ModelReference
from autoc.modelspace.multiple import fast_multiple
from autoc.modelspace.reference import load_model, weights_digest
from autoc.modelspace.starts import kept_mass, start_params
from autoc.onnx.parity import accuracy_drift, latency_drift
from autoc.run_paths import budget_suffix, resolve_stored, stored_path, stored_runs_dir
from autoc.search.storage import default_storage_url, open_storage, open_study
from autoc.training.loop import TrainConfig, accuracy, train

logger = logging.getLogger(__name__)

INT8 = INT8_LAYER  # one definition, autoc.modelspace.latency
LATENCY_ATTR, ACCURACY_ATTR, SECONDS_ATTR, SIZE_ATTR = "latency_ms", "accuracy", "seconds", "size_kb"
TABLE_FILE = "layer_latency.json"
OPTIONS_ATTR = "compress_options"
RESULT_ATTR = "compress_result"
CALIBRATION_IMAGES = 64  # training images the int8 export's activation ranges come from
# A budget's most accurate trials tried in turn until one's exported program measures within it:
# the table predicts, the program is what ships.
MEASURED_TRIES = 3


@dataclass(frozen=True, kw_only=True)
class CompressOptions:
    """What `autoc compress` was asked to do."""

    model: str  # torchvision:NAME or package.module:callable
    budgets_ms: tuple[float, ...]
    weights: Path | None = None  # a state dict; None: the model is first trained pretrain_steps on the data
    pretrain_steps: int = 300
    dataset: str = "digits"
    data_dir: Path | None = None
    input_size: int = 32
    max_train: int | None = None
    max_val: int | None = None
    device: str = "host"
    trials: int = 30
    seed: int = 0
    finetune_steps: int = 40
    finetune_lr: float = 0.01  # the user's weights are trained: a small step keeps what they know
    keep_choices: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    channel_multiple: int | None = None  # kept channel counts round to this; None: what the table shows runs fast
    # Weight bits an int8 layer may take (below 8: smaller, not faster, the int8 kernels run them)
    weight_bits_choices: tuple[int, ...] = (8,)
    sparsity_choices: tuple[float, ...] = (0.0,)  # unstructured sparsity a layer may take (size, not speed)
    size_budget_kb: float | None = None  # the chosen models' size at most (kB of 1024 bytes, policy_size_bytes)
    runs_dir: Path = Path("runs")
    study: str | None = None
    threads: int = 1  # torch and ONNX Runtime threads
    run_dir: Path | None = None  # the study's run directory when it is not runs_dir/study (a renamed one, resumed)

    def __post_init__(self) -> None:
        if not self.budgets_ms or any(not (isinstance(b, (int, float)) and math.isfinite(b) and b > 0)
                                      for b in self.budgets_ms):
            raise OptionError(f"budgets_ms must be one or more positive numbers of ms, got {list(self.budgets_ms)}: "
                              "give e.g. budgets_ms=(8.0, 12.0)", fields=("budgets_ms",))
        if self.channel_multiple is not None and not (isinstance(self.channel_multiple, int) and
                                                      1 <= self.channel_multiple <= 256):
            raise OptionError(f"channel_multiple must be an integer in 1..256, got {self.channel_multiple!r}: use e.g. "
                              "8, or leave it out to take it from the latency table", fields=("channel_multiple",))
        if not self.keep_choices or any(not 0 < k <= 1 for k in self.keep_choices):
            raise OptionError(f"keep_choices must lie in (0, 1], got {list(self.keep_choices)}: use e.g. "
                              "(0.25, 0.5, 1.0)", fields=("keep_choices",))
        if not self.weight_bits_choices or any(isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= 8
                                               for b in self.weight_bits_choices):
            raise OptionError(f"weight_bits_choices must be whole numbers of bits in 2..8, got "
                              f"{list(self.weight_bits_choices)}: use e.g. (8, 6, 4)", fields=("weight_bits_choices",))
        if not self.sparsity_choices or any(not (isinstance(x, (int, float)) and 0 <= x < 1)
                                            for x in self.sparsity_choices):
            raise OptionError(f"sparsity_choices must lie in [0, 1), got {list(self.sparsity_choices)}: use e.g. "
                              "(0, 0.5, 0.75)", fields=("sparsity_choices",))
        if self.size_budget_kb is not None and not (isinstance(self.size_budget_kb, (int, float))
                                                    and math.isfinite(self.size_budget_kb) and self.size_budget_kb > 0):
            raise OptionError(f"size_budget_kb must be a positive number of kB, got {self.size_budget_kb}: give e.g. "
                              "size_budget_kb=500", fields=("size_budget_kb",))

    def to_dict(self) -> dict:
        """Plain data, stored with the study so `autoc compress runs/<study>` resumes with it."""
        return {f.name: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for f in fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, data: dict) -> "CompressOptions":
        paths = {"weights", "data_dir", "runs_dir", "run_dir"}
        tuples = {"budgets_ms", "keep_choices", "weight_bits_choices", "sparsity_choices"}
        return cls(**{k: (Path(v) if k in paths and v is not None else tuple(v) if k in tuples else v)
                      for k, v in data.items() if k in {f.name for f in fields(cls)}})


_DEFAULTS = {f.name: f.default for f in fields(CompressOptions)}


@dataclass(frozen=True)
class Chosen:
    """The policy chosen for one budget: its trial, accuracy, latency and the files written."""

    budget_ms: float
    trial: int | None  # None: the original model already fits
    accuracy: float
    predicted_ms: float
    measured_ms: float | None  # two interleaved sessions, as calibration times a network (autoc.latency.check)
    policy_path: Path | None
    weights_path: Path | None
    int8_layers: int = 0
    mean_keep: float = 1.0
    size_kb: float | None = None  # policy_size_bytes / 1024; None: stored before sizes were recorded
    onnx_path: Path | None = None
    onnx_accuracy: float | None = None  # the exported program's, in ONNX Runtime
    below_floor: bool = False  # below the most compressed policy's predicted latency: nothing can fit
    measured_spread: float | None = None  # (slowest - fastest session) / mean of the measurement
    measured_noisy: bool = False  # the sessions disagree beyond calibration's NOISY rule
    measured_over: tuple[int, ...] = ()  # more accurate trials passed over: predicted within, measured over the budget

    def drift(self) -> tuple[str, ...]:
        """One line per way the exported program is not the model the search scored (empty: it is)."""
        what = f"budget {self.budget_ms:g} ms: {self.onnx_path.name if self.onnx_path else 'the export'}"
        problems = []
        if self.onnx_accuracy is not None and not math.isnan(self.accuracy):
            problems.append(accuracy_drift(exported=self.onnx_accuracy, scored=self.accuracy, what=what))
        if self.measured_ms is not None and self.trial is not None:
            problems.append(latency_drift(measured_ms=self.measured_ms, predicted_ms=self.predicted_ms, what=what))
        return tuple(p for p in problems if p is not None)


@dataclass(frozen=True)
class CompressResult:
    """What a compress run found: the original model's figures and the chosen policy per budget."""

    study: str
    run_dir: Path
    original_accuracy: float
    original_predicted_ms: float
    original_measured_ms: float | None  # None: the device is not this host, nothing of it is measured here
    floor_ms: float  # the most compressed policy's predicted latency
    pretrained_here: bool
    unprunable: dict
    chosen: tuple[Chosen, ...]
    trials_total: int
    trials_this_run: int
    seconds_per_trial: float | None
    held_out_errors: tuple[float, ...]
    wall_seconds: float
    channel_multiple: int = 1  # kept channel counts were rounded to this
    original_size_kb: float | None = None  # None: stored before sizes were recorded
    size_budget_kb: float | None = None
    device: str = "host"  # whose latency the predictions are (another's: the table imported from its pack)

    def to_dict(self) -> dict:
        """Plain JSON data (paths as strings; NaN as null)."""
        def plain(value):
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value
        return plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "CompressResult":
        def path(value):
            return Path(value) if value is not None else None

        chosen = tuple(Chosen(**{**c, "accuracy": math.nan if c["accuracy"] is None else c["accuracy"],
                                 "measured_over": tuple(c.get("measured_over", ())),
                                 "predicted_ms": math.nan if c["predicted_ms"] is None else c["predicted_ms"],
                                 "policy_path": path(c["policy_path"]), "weights_path": path(c["weights_path"]),
                                 "onnx_path": path(c.get("onnx_path"))}) for c in data["chosen"])
        return cls(**{**data, "run_dir": Path(data["run_dir"]), "chosen": chosen,
                      "held_out_errors": tuple(data["held_out_errors"])})


@dataclass
class _Context:
    options: CompressOptions
    model: torch.nn.Module
    structure: ModelStructure
    layers: tuple[Layer, ...]
    table: LayerTable
    data: DatasetSplit
    teacher_logits: torch.Tensor
    weights_sha256: str | None  # of options.weights; None: trained here
    multiple: int = 1  # kept channel counts round to this (autoc.modelspace.multiple)
    chosen: dict = field(default_factory=dict)  # trial number -> what _finish made of it, shared by budgets


def run_compress(options: CompressOptions, *, log: Callable[[str], None] = logger.info) -> CompressResult:
    """Search compression policies for the user's model ``options.model`` and choose one per
    budget (see the module docstring); the same study name resumes it::

        done = run_compress(CompressOptions(model="torchvision:resnet18", weights="r18.pt", budgets_ms=(0.6,)))
        for chosen in done.chosen:
            print(chosen.budget_ms, chosen.accuracy, chosen.measured_ms, chosen.policy_path)
    """
    start = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    foreign = options.device != HOST
    if foreign and host_runtime(options.device) is not None:
        raise DeviceError(f"device {options.device!r}: a user's model is timed in ONNX Runtime, on this host "
                          "(device='host') or on another device through its pack; use one of those")
    if foreign:
        check_device_name(options.device)
    torch.set_num_threads(options.threads)
    data = load_dataset(options.dataset, data_dir=options.data_dir, input_size=options.input_size, seed=options.seed,
                        max_train=options.max_train, max_val=options.max_val)
    model = load_model(options.model, num_classes=data.num_classes, weights=options.weights)
    if options.size_budget_kb is not None:  # before anything is trained, timed or stored
        _check_size_budget(options, model, data.train_x[:1])
    example = data.train_x[:1]
    structure = analyse(model, example)  # of the layers, not the weights: the same before and after pretraining
    if not structure.groups:
        raise ModelError(f"model {options.model} has no channel group that can be pruned (fixed: "
                         f"{', '.join(sorted(structure.fixed)) or 'none'}): autoc compresses conv networks")
    layers = model_layers(model, example)
    imported = device_table(options.device, model=options.model, layers=layers, structure=structure,
                            input_size=int(example.shape[-1]), num_classes=data.num_classes,
                            keep_choices=options.keep_choices, runs_dir=Path(options.runs_dir)) if foreign else None
    study_name = options.study or f"{options.model.replace(':', '-').replace('.', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(options.run_dir or Path(options.runs_dir) / study_name).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    pretrained_here = options.weights is None
    if pretrained_here:
        model = _pretrained(model, data, options, run_dir, log)
    table_path = run_dir / TABLE_FILE
    if imported is not None:
        table = imported.table
        log(f"latency predicted for {options.device} from its imported table ({len(table.units_ms)} units, "
            f"{imported.source}); nothing is timed on this host")
    else:
        table = LayerTable.from_dict(json.loads(table_path.read_text())) if table_path.is_file() else LayerTable({})
    ctx = _Context(options=options, model=model, structure=structure, layers=layers, table=table,
                   data=data, teacher_logits=original_logits(model, data),
                   weights_sha256=weights_digest(options.weights) if options.weights else None)
    # the table's multiple, probed once, when the table is new: a device's imported table times
    # nothing (its pack's multiple is 1), and a table written before multiples were probed had 1
    new_table = imported is None and not table_path.is_file()
    ctx.multiple = options.channel_multiple or table.channel_multiple or (
        fast_multiple(ctx.layers, table, threads=options.threads) if new_table else 1)
    table.channel_multiple = ctx.multiple
    errors = imported.held_out_errors if imported is not None else _calibrate(ctx, log) if new_table else ()
    original = ModelPolicy.of()
    original_ms = table.predict_ms(policy_layers(ctx.layers, structure, original))
    original_measured = None if foreign else measure_networks(model, [original], example_input=example,
                                                              threads=options.threads)[0]
    original_accuracy = accuracy(model, data.val_x, data.val_y)
    original_kb = _size_kb(ctx, original)
    floor_ms = _check_budgets(ctx, original_ms, original_kb=original_kb)

    identity = {"model": options.model, "weights": ctx.weights_sha256 or "trained-here",
                "dataset": data.fingerprint, "device": options.device,
                "keep_choices": ",".join(map(str, options.keep_choices))}
    for key in ("weight_bits_choices", "sparsity_choices", "size_budget_kb"):  # older studies lack them
        if getattr(options, key) != _DEFAULTS[key]:
            value = getattr(options, key)
            identity[key] = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    storage = open_storage(default_storage_url(run_dir))
    sampler = optuna.samplers.TPESampler(seed=options.seed)
    study = open_study(storage=storage, name=study_name, identity=identity, sampler=sampler, directions=["maximize"],
                       study_field="study")
    study.set_user_attr(OPTIONS_ATTR, _stored_options(options, study=study_name, run_dir=run_dir))
    done_before = _finished(study)
    if not study.trials:
        _enqueue_starts(study, ctx)
    budget = max(options.budgets_ms)
    seconds: list[float] = []
    for _ in range(max(0, options.trials - done_before)):
        trial = study.ask()
        began = time.perf_counter()
        value = _run_trial(trial, ctx, budget)
        seconds.append(time.perf_counter() - began)
        trial.set_user_attr(SECONDS_ATTR, seconds[-1])
        study.tell(trial, value)
        write_text_atomic(table_path, json.dumps(ctx.table.to_dict()))
        log(f"trial {trial.number}: {trial.user_attrs[LATENCY_ATTR]:.3f} ms predicted, "
            f"{trial.user_attrs[SIZE_ATTR]:.1f} kB, accuracy "
            f"{trial.user_attrs.get(ACCURACY_ATTR, float('nan')):.3f} ({seconds[-1]:.1f} s)")
    chosen = tuple(_choose(study, ctx, b, original_ms=original_ms, original_accuracy=original_accuracy,
                           original_kb=original_kb, run_dir=run_dir, several=len(options.budgets_ms) > 1)
                   if b >= floor_ms
                   else Chosen(budget_ms=b, trial=None, accuracy=math.nan, predicted_ms=math.nan, measured_ms=None,
                               policy_path=None, weights_path=None, below_floor=True)
                   for b in options.budgets_ms)
    result = CompressResult(
        study=study_name, run_dir=run_dir, original_accuracy=original_accuracy, original_predicted_ms=original_ms,
        original_measured_ms=original_measured, floor_ms=floor_ms, pretrained_here=pretrained_here,
        unprunable=dict(structure.fixed),
        chosen=chosen, trials_total=_finished(study), trials_this_run=len(seconds),
        seconds_per_trial=sum(seconds) / len(seconds) if seconds else None, held_out_errors=tuple(errors),
        wall_seconds=time.perf_counter() - start, original_size_kb=original_kb, size_budget_kb=options.size_budget_kb,
        channel_multiple=ctx.multiple, device=options.device)
    study.set_user_attr(RESULT_ATTR, _relative_paths(result.to_dict(), run_dir=run_dir))  # what `autoc show` prints
    return result


def _stored_options(options: CompressOptions, *, study: str, run_dir: Path) -> dict:
    """The options as stored to resume: the user's weights and data as absolute paths (they are the
    user's, wherever the run directory goes), the runs dir relative to the run directory."""
    stored = {**options.to_dict(), "study": study, "runs_dir": stored_runs_dir(options.runs_dir, run_dir=run_dir)}
    stored.pop("run_dir")  # where the run directory is: wherever it is resumed from
    for key in ("weights", "data_dir"):
        if stored[key] is not None:
            stored[key] = os.path.abspath(stored[key])
    return stored


_RESULT_PATHS = ("policy_path", "weights_path", "onnx_path")


def _relative_paths(result: dict, *, run_dir: Path) -> dict:
    """A result's files relative to its run directory: a copied or moved run shows its own."""
    return _with_paths(result, run_dir=".", path=lambda stored: stored_path(stored, run_dir=run_dir))


def _resolved_paths(result: dict, *, run_dir: Path) -> dict:
    """The stored result's files where they are now, in ``run_dir`` (absolute in older studies)."""
    return _with_paths(result, run_dir=str(Path(run_dir).absolute()),
                       path=lambda stored: str(resolve_stored(stored, run_dir=run_dir)))


def _with_paths(result: dict, *, run_dir: str, path: Callable[[str], str]) -> dict:
    """``result`` with its run directory ``run_dir`` and each chosen file's path through ``path``."""
    return {**result, "run_dir": run_dir, "chosen": [
        {**c, **{key: path(c[key]) for key in _RESULT_PATHS if c.get(key) is not None}} for c in result["chosen"]]}


def _pretrained(model, data, options, run_dir, log):
    """No weights given: train the model briefly on the data (cached in the run directory)."""
    path = run_dir / "pretrained.pt"
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    log(f"no weights given: training {options.model} {options.pretrain_steps} steps on {data.name} first")
    torch.manual_seed(options.seed)
    train(model, data.train_x, data.train_y, config=TrainConfig(steps=options.pretrain_steps, seed=options.seed))
    save_torch_atomic(path, model.state_dict())
    return model.eval()


def _calibrate(ctx: _Context, log) -> tuple[float, ...]:
    """Fit the table's correction on compressed variants timed whole; the held-out error is reported."""
    fit, held = calibration_policies(ctx.structure, keep_choices=ctx.options.keep_choices, seed=ctx.options.seed,
                                     multiple=ctx.multiple)
    log(f"timing the layers of {ctx.options.model} and {len(fit) + len(held)} compressed variants on this host")
    result = calibrate(ctx.model, ctx.structure, fit, example_input=ctx.data.train_x[:1], held_out=held,
                       table=ctx.table, threads=ctx.options.threads)
    return result.held_out_errors


def _most_compressed(ctx: _Context) -> ModelPolicy:
    """The fewest channels, every offered layer int8 at the fewest weight bits, the most sparsity."""
    low, sparse = min(ctx.options.keep_choices), max(ctx.options.sparsity_choices)
    int8 = replace(INT8, weight_bits=min(ctx.options.weight_bits_choices), sparsity=sparse)
    return ModelPolicy.of(keep={g.name: low for g in ctx.structure.groups},
                          layers={n: int8 for n in ctx.structure.int8_layers}, multiple=ctx.multiple)


def _size_kb(ctx: _Context, policy: ModelPolicy) -> float:
    return policy_size_bytes(policy_layers(ctx.layers, ctx.structure, policy), policy) / 1024


def _check_size_budget(options: CompressOptions, model: torch.nn.Module, example: torch.Tensor) -> None:
    """Refuses a size budget below the smallest model the options' choices allow (the model's shapes
    alone decide it: its weights, trained or not, do not)."""
    structure = analyse(model, example)
    ctx = _Context(options=options, model=model, structure=structure, layers=model_layers(model, example),
                   table=LayerTable({}), data=None, teacher_logits=None, weights_sha256=None)
    smallest, original = _size_kb(ctx, _most_compressed(ctx)), _size_kb(ctx, ModelPolicy.of())
    if options.size_budget_kb < smallest:
        raise BudgetError(f"size budget {options.size_budget_kb:g} kB is below the smallest model the choices allow "
                          f"({smallest:.1f} kB; the original is {original:.1f} kB): give a size budget of at "
                          "least that, or fewer weight bits, more sparsity or smaller keep choices")


def _check_budgets(ctx: _Context, original_ms: float, *, original_kb: float) -> float:
    """The floor (the most compressed policy's predicted ms); refuses when no budget is above it or
    the original already fits every budget, the size budget included (``_check_size_budget`` has
    refused one below the smallest model). A budget below the floor among others is reported in
    the result instead."""
    floor_layers = policy_layers(ctx.layers, ctx.structure, _most_compressed(ctx))
    ctx.table.measure(floor_layers, threads=ctx.options.threads)
    floor = ctx.table.predict_ms(floor_layers)
    size_budget = ctx.options.size_budget_kb
    low, high = min(ctx.options.budgets_ms), max(ctx.options.budgets_ms)
    if high < floor:
        raise BudgetError(f"budget {high:g} ms is below the most compressed policy's predicted "
                          f"{floor:.3f} ms on {ctx.options.device}: give budgets of at least {floor:.3f} ms, or "
                          "smaller keep choices")
    if low >= original_ms and (size_budget is None or original_kb <= size_budget):
        raise BudgetError(f"the original model already fits every budget ({original_ms:.3f} ms predicted <= "
                          f"{low:g} ms): nothing to compress for latency; give a budget below {original_ms:.3f} ms")
    return floor


def _enqueue_starts(study: optuna.Study, ctx: _Context) -> None:
    """Start a new study from the policies ``autoc.modelspace.starts`` builds from the layer table
    (greedy per budget, uniform with int8 where faster, plain uniform), each with the most weight
    bits and least sparsity that fit the size budget (``_sized``; dropped where none does): the
    chosen policy is then never worse than the best of them the estimate sees, and the sampler
    learns from the start which side of each budget they lie on."""
    options = ctx.options
    example = ctx.data.train_x[:1]

    def shape(keep, int8):
        return policy_layers(ctx.layers, ctx.structure, ModelPolicy.of(
            keep={k: v for k, v in keep.items() if v < 1.0}, layers={n: INT8 for n, on in int8.items() if on},
            multiple=ctx.multiple))

    mass = kept_mass(ctx.model, ctx.structure, example, options.keep_choices, multiple=ctx.multiple)
    starts = start_params(ctx.structure, shape, ctx.table, budgets_ms=options.budgets_ms,
                          keep_choices=options.keep_choices, mass=mass, threads=options.threads)
    sized = [p for p in (_sized(params, ctx) for params in starts) if p is not None]
    for params in sized[:max(1, options.trials // 2)]:
        study.enqueue_trial(params)


def _sized(params: dict, ctx: _Context) -> dict | None:
    """A start's ``params`` with one weight bits for its int8 layers and one sparsity for every offered
    layer (parameters only where the options offer several): the most bits, then the least sparsity,
    whose model fits the size budget; None where none does."""
    options = ctx.options
    int8 = [n for n in ctx.structure.int8_layers if params.get(f"int8:{n}")]
    several_bits, several_sparsities = len(options.weight_bits_choices) > 1, len(options.sparsity_choices) > 1
    for bits in sorted(options.weight_bits_choices, reverse=True):
        for sparsity in sorted(options.sparsity_choices):
            full = {**params, **({f"wbits:{n}": bits for n in int8} if several_bits else {}),
                    **({f"sparsity:{n}": sparsity for n in ctx.structure.int8_layers} if several_sparsities else {})}
            if _fits_size(ctx, _size_kb(ctx, policy_of(optuna.trial.FixedTrial(full), ctx))):
                return full
    return None


def policy_of(trial: optuna.trial.BaseTrial, ctx: _Context) -> ModelPolicy:
    """The compression policy ``trial`` suggests: a keep ratio per channel group, int8 or not per
    offered conv and linear layer, weight bits per int8 layer and a sparsity per offered layer (the
    classifier, offered neither, stays dense fp32).
    A choice the options leave single is taken without a parameter (``wbits:`` and ``sparsity:``
    appear only where there are several, so studies from before them read the same)."""
    options = ctx.options
    keep = {g.name: trial.suggest_categorical(f"keep:{g.name}", options.keep_choices) for g in ctx.structure.groups}
    layers = {}
    for name in ctx.structure.int8_layers:
        sparsity = (trial.suggest_categorical(f"sparsity:{name}", options.sparsity_choices)
                    if len(options.sparsity_choices) > 1 else options.sparsity_choices[0])
        if trial.suggest_categorical(f"int8:{name}", (False, True)):
            bits = (trial.suggest_categorical(f"wbits:{name}", options.weight_bits_choices)
                    if len(options.weight_bits_choices) > 1 else options.weight_bits_choices[0])
            layers[name] = replace(INT8, weight_bits=int(bits), sparsity=float(sparsity))
        elif sparsity:
            layers[name] = LayerPolicy(sparsity=float(sparsity))
    return ModelPolicy.of(keep={k: v for k, v in keep.items() if v < 1.0}, layers=layers, multiple=ctx.multiple)


def _fits_size(ctx: _Context, size_kb: float) -> bool:
    return ctx.options.size_budget_kb is None or size_kb <= ctx.options.size_budget_kb


def _run_trial(trial: optuna.Trial, ctx: _Context, budget_ms: float) -> float:
    policy = policy_of(trial, ctx)
    layers = policy_layers(ctx.layers, ctx.structure, policy)
    ctx.table.measure(layers, threads=ctx.options.threads)
    latency = ctx.table.predict_ms(layers)
    size_kb = policy_size_bytes(layers, policy) / 1024
    trial.set_user_attr(LATENCY_ATTR, latency)
    trial.set_user_attr(SIZE_ATTR, size_kb)
    trial.set_constraint("latency_over_budget_ms", latency - budget_ms)
    if latency > budget_ms or not _fits_size(ctx, size_kb):  # over every budget: not worth a fine-tune
        return 0.0
    estimate = estimate_policy(ctx.model, policy, ctx.data, teacher_logits=ctx.teacher_logits, config=TrainConfig(
        steps=ctx.options.finetune_steps, lr=ctx.options.finetune_lr, seed=ctx.options.seed))
    trial.set_user_attr(ACCURACY_ATTR, estimate.accuracy)
    return estimate.accuracy


def _finished(study: optuna.Study) -> int:
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def _choose(study, ctx: _Context, budget_ms: float, *, original_ms: float, original_accuracy: float,
            original_kb: float, run_dir: Path, several: bool) -> Chosen:
    if original_ms <= budget_ms and _fits_size(ctx, original_kb):
        return Chosen(budget_ms=budget_ms, trial=None, accuracy=original_accuracy, predicted_ms=original_ms,
                      measured_ms=None, policy_path=None, weights_path=None, size_kb=original_kb)
    fitting = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
               and ACCURACY_ATTR in t.user_attrs and t.user_attrs[LATENCY_ATTR] <= budget_ms
               and _fits_size(ctx, t.user_attrs.get(SIZE_ATTR, 0.0))]
    if not fitting:
        return Chosen(budget_ms=budget_ms, trial=None, accuracy=float("nan"), predicted_ms=float("nan"),
                      measured_ms=None, policy_path=None, weights_path=None)
    best, over = _measured_best(fitting, ctx, budget_ms)
    policy, estimate, program, timing, onnx_acc = ctx.chosen[best.number]
    options = ctx.options
    suffix = budget_suffix(budget_ms, several=several)
    weights_path = run_dir / f"compressed{suffix}.pt"
    save_torch_atomic(weights_path, estimate.model.state_dict())
    file = ModelPolicyFile(
        reference=ModelReference(model=options.model, num_classes=ctx.data.num_classes, input_size=options.input_size,
                                 weights_sha256=ctx.weights_sha256),
        policy=policy, device=options.device, budget_ms=budget_ms,
        metrics={"accuracy": estimate.accuracy, "predicted_ms": best.user_attrs[LATENCY_ATTR],
                 "size_kb": _size_kb(ctx, policy), "trial": best.number},
        preprocessing=ctx.data.preprocessing)
    policy_path = run_dir / f"best_policy{suffix}.json"
    file.write(policy_path)
    onnx_path = run_dir / f"compressed{suffix}.onnx"
    write_bytes_atomic(onnx_path, program)
    keep = dict(policy.keep)
    return Chosen(budget_ms=budget_ms, trial=best.number, accuracy=estimate.accuracy,
                  predicted_ms=best.user_attrs[LATENCY_ATTR], measured_ms=timing and timing.figure_ms,
                  measured_spread=timing and timing.session_spread, measured_noisy=bool(timing and timing.noisy),
                  policy_path=policy_path,
                  weights_path=weights_path, onnx_path=onnx_path, onnx_accuracy=onnx_acc,
                  int8_layers=sum(1 for _, layer in policy.layers.layers if layer.quantized),
                  mean_keep=sum(keep.get(g.name, 1.0) for g in ctx.structure.groups) / len(ctx.structure.groups),
                  size_kb=_size_kb(ctx, policy), measured_over=over)


def _measured_best(fitting: list, ctx: _Context, budget_ms: float) -> tuple[optuna.trial.FrozenTrial, tuple[int, ...]]:
    """The most accurate of ``fitting`` (trials predicted within ``budget_ms``) whose exported
    program also *measures* within it on this host, trying at most MEASURED_TRIES in order of
    accuracy; where none does, the fastest measured of them. Returns it and the trials passed
    over because they measured over the budget. Each tried trial is fine-tuned, exported and
    timed once (``_finish``), shared by every budget that tries it."""
    ranked = sorted(fitting, key=lambda t: (-t.user_attrs[ACCURACY_ATTR], t.number))[:MEASURED_TRIES]
    if ctx.options.device != HOST:  # another device's program cannot be timed here: the table's word stands
        if ranked[0].number not in ctx.chosen:
            ctx.chosen[ranked[0].number] = _finish(ranked[0], ctx)
        return ranked[0], ()
    over = []
    for trial in ranked:
        if trial.number not in ctx.chosen:
            ctx.chosen[trial.number] = _finish(trial, ctx)
        if ctx.chosen[trial.number][3].figure_ms <= budget_ms:
            return trial, tuple(over)
        over.append(trial.number)
    fastest = min(ranked, key=lambda t: ctx.chosen[t.number][3].figure_ms)
    return fastest, tuple(n for n in over if n != fastest.number)


def _finish(trial: optuna.trial.FrozenTrial, ctx: _Context) -> tuple:
    """A chosen trial's policy fine-tuned again (the same seed: the trial's estimate), exported, timed
    and scored in ONNX Runtime: (policy, estimate, ONNX bytes, LatencyCheck, ONNX accuracy)."""
    policy = policy_of(optuna.trial.FixedTrial(trial.params), ctx)
    estimate = estimate_policy(ctx.model, policy, ctx.data, teacher_logits=ctx.teacher_logits, config=TrainConfig(
        steps=ctx.options.finetune_steps, lr=ctx.options.finetune_lr, seed=ctx.options.seed))
    program = export_compressed(estimate.model, calibration=ctx.data.train_x[:CALIBRATION_IMAGES].numpy(),
                                preprocessing=ctx.data.preprocessing)
    # Timed as `autoc export` times it (two interleaved sessions, their spread kept), so the gate
    # below and a later export judge the same figure; another device's latency is not measured here.
    timing = None if ctx.options.device != HOST else measure_exported(program, tuple(ctx.data.train_x[:1].shape),
                                                                      threads=ctx.options.threads)
    return policy, estimate, program, timing, onnx_accuracy(program, ctx.data.val_x, ctx.data.val_y)


def _stored(run_dir: Path, attr: str) -> tuple[str, dict | None]:
    """(study name, the study attribute ``attr``) of the one study in ``run_dir``'s study.db;
    ("", None) where there is no study.db or it holds other than one study."""
    if not (run_dir / "study.db").is_file():
        return "", None
    studies = open_storage(default_storage_url(run_dir), create=False).get_all_studies()
    return (studies[0].study_name, studies[0].user_attrs.get(attr)) if len(studies) == 1 else ("", None)


def stored_options(run_dir: Path) -> CompressOptions:
    """The options a compress study in ``run_dir`` was run with (to resume it)."""
    if not (run_dir / "study.db").is_file():
        raise StorageError(f"{run_dir} holds no study.db: give the run directory of a compress run (runs/<study>)")
    name, stored = _stored(run_dir, OPTIONS_ATTR)
    if stored is None:
        raise StorageError(f"{run_dir} holds no autoc compress study (a search's? use autoc search --resume)")
    run_dir = run_dir.resolve()
    return replace(CompressOptions.from_dict(stored), study=name, runs_dir=run_dir.parent,
                   run_dir=run_dir if run_dir.name != name else None)  # a renamed directory resumes in place


def stored_result(run_dir: Path) -> CompressResult | None:
    """The result the last finished compress run stored with the study in ``run_dir``; None when
    the directory holds a study of another kind or none has finished."""
    _, stored = _stored(run_dir, RESULT_ATTR)
    return CompressResult.from_dict(_resolved_paths(stored, run_dir=run_dir)) if stored else None
