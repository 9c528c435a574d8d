"""What `autoc search` was asked to do: one frozen value, passed to the driver and to every worker.

``SearchOptions`` holds the search's own fields and one small group per concern: the supernet's
recipe (``autoc.supernet.SupernetConfig``, None for no supernet), the stages after the trials
(``FinalistOptions``), the workers (``WorkerOptions``) and where the study lives (``StorageOptions``).
Each validates its own fields and raises ``OptionError`` naming the field; the CLI maps field
names onto its flags. ``SearchOptions.from_dict`` builds the whole value from plain data (a recipe
file, the options stored with a study), checking keys and types.
"""
from __future__ import annotations

import math
import os
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from optuna.samplers import BaseSampler

from autoc.errors import OptionError
from autoc.supernet import SupernetConfig

SAMPLERS = ("nsga2", "tpe", "gp", "ehvi", "random")
AUTO = "auto"  # finalists: the top estimate and the trials its validation images do not separate from it


def _at_least(name: str, value: int | None, minimum: int, fix: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise OptionError(f"{name} must be a whole number >= {minimum}, got {value!r}: {fix}", fields=(name,))


def _positive(name: str, value: float | None, fix: str, *, zero: bool = False) -> None:
    """A finite number > 0 (>= 0 with ``zero``); None passes (an optional field left out)."""
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value >= 0 if zero else value > 0)
    if not ok:
        raise OptionError(f"{name} must be a finite number {'>= 0' if zero else '> 0'}, got {value!r}: {fix}",
                          fields=(name,))


@dataclass(frozen=True, kw_only=True)
class FinalistOptions:
    """The stages after the trials (autoc.search.finalists, autoc.search.seed_noise)."""

    # Train the top ``count`` estimates from scratch for ``steps`` steps and choose by that accuracy;
    # 0 chooses by the estimate; "auto": the top estimate and the trials it does not separate from it.
    count: int | str = 0
    steps: int = 300
    augment: bool = False  # random crop and flip (photos, not digits)
    # The top ``noise_trials`` estimates are estimated again with the next training seed, so the
    # estimate-noise line and ``count="auto"`` count that noise too; 0 is off.
    noise_trials: int = 4

    def __post_init__(self) -> None:
        if self.count != AUTO and (isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0):
            raise OptionError(f"count must be a whole number >= 0 or {AUTO!r}, got {self.count!r}: set count to "
                              f"e.g. 3, or 0 to choose by the estimate", fields=("count",))
        _at_least("steps", self.steps, 1, "set steps to the training steps of each finalist, e.g. 300")
        _at_least("noise_trials", self.noise_trials, 0, "set noise_trials to e.g. 4, or 0 for none")


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    """How many trials run at once, and where: 1 runs in this process, more run as Ray tasks."""

    count: int = 1
    ray_address: str | None = None  # an existing Ray cluster; None starts a local instance when count > 1
    cpus: int | None = None  # CPUs (and torch threads) per worker; None: this machine's cores shared out, 1 on a cluster
    gpus: float | None = None  # GPUs Ray reserves per worker; None: 1 when training on a GPU, else 0
    heartbeat_interval_s: int = 10
    grace_period_s: int = 60  # a trial silent this long belongs to a dead worker: failed and re-run

    def __post_init__(self) -> None:
        _at_least("count", self.count, 1, "set count to the trials to run at once, e.g. 2")
        _at_least("cpus", self.cpus, 1, "set cpus to e.g. 2, or leave it out to share this machine's cores")
        _positive("gpus", self.gpus, "set gpus to e.g. 0.5 (a fraction shares a GPU), or leave it out", zero=True)
        _at_least("heartbeat_interval_s", self.heartbeat_interval_s, 1, "set heartbeat_interval_s to e.g. 10")
        _at_least("grace_period_s", self.grace_period_s, 1, "set grace_period_s to e.g. 60")
        if self.grace_period_s <= self.heartbeat_interval_s:
            raise OptionError(
                f"grace_period_s ({self.grace_period_s}) must exceed heartbeat_interval_s ({self.heartbeat_interval_s}), "
                "or live trials would be taken for dead ones: set grace_period_s to twice the interval or more",
                fields=("grace_period_s", "heartbeat_interval_s"))


@dataclass(frozen=True, kw_only=True)
class StorageOptions:
    """Where the study lives: its Optuna storage, its name, and the folders beside it."""

    url: str | None = None  # Optuna storage URL; None: SQLite in the run directory
    study: str | None = None  # None: named after the space and the time by the driver
    runs_dir: Path = Path("runs")  # studies, caches and device profiles
    run_dir: Path | None = None  # the study's run directory when it is not runs_dir/study (a renamed one, resumed)

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs_dir", Path(self.runs_dir))
        if self.run_dir is not None:
            object.__setattr__(self, "run_dir", Path(self.run_dir))

    def run_directory(self) -> Path:
        return self.run_dir if self.run_dir is not None else self.runs_dir / str(self.study)


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """The options of run_search; invalid values raise OptionError naming the field."""

    budget_ms: float  # the largest budget: a candidate predicted over it is priced and never trained
    # A budget sweep (one chosen model per budget from one study): the budgets, budget_ms the largest
    # among them; () is the one budget budget_ms. Stored sorted, without repeats.
    budgets_ms: tuple[float, ...] = ()
    budget_mj: float | None = None  # optional energy budget per inference (estimated from the profile)
    # The main command's target: a phone, where a budget of tens of ms separates the space's networks
    # (on the host every candidate fits it); its shipped profile needs no calibration
    space: str = "fbnet-cifar"
    dataset: str = "digits"
    data_dir: str | None = None
    max_train: int | None = None
    max_val: int | None = None
    device: str = "pixel3"
    trials: int = 30  # the study's total, counted across resumes
    timeout_s: float | None = None
    seed: int = 0
    # A name (SAMPLERS) or an Optuna sampler; tpe beat NSGA-II at small trial counts (README, hypervolume figures)
    sampler: str | BaseSampler = "tpe"
    # TPE / NSGA-II start from candidates spread over the predicted-latency range (autoc.search.startup);
    # off by default: with the supernet estimate it found less accurate networks (README, search quality)
    spread_start: bool = False
    finetune_steps: int = 20
    teacher_steps: int = 120
    batch_size: int = 32
    # Where the training steps run (teacher, supernet, fine-tuning, finalists): cpu, cuda, cuda:N or
    # auto (autoc.training.compute); estimates, latency and export stay on the CPU.
    train_device: str = "cpu"
    progress: bool = True
    # Candidates inherit from a weight-sharing supernet trained with this recipe (its seed and batch
    # size are the search's); None: from the briefly trained largest network.
    supernet: SupernetConfig | None = None
    finalists: FinalistOptions = field(default_factory=FinalistOptions)
    workers: WorkerOptions = field(default_factory=WorkerOptions)
    storage: StorageOptions = field(default_factory=StorageOptions)

    def __post_init__(self) -> None:
        _positive("budget_ms", self.budget_ms, "set budget_ms to the latency budget in ms, e.g. 20")
        self._check_budgets()
        _positive("budget_mj", self.budget_mj, "set budget_mj to the energy budget in mJ, e.g. 0.5, or leave it out")
        _positive("timeout_s", self.timeout_s, "set timeout_s to e.g. 3600, or leave it out")
        _at_least("trials", self.trials, 1, "set trials to the study's total, e.g. 30")
        _at_least("seed", self.seed, 0, "set seed to e.g. 0")
        _at_least("finetune_steps", self.finetune_steps, 0, "set finetune_steps to e.g. 20")
        _at_least("teacher_steps", self.teacher_steps, 1, "set teacher_steps to e.g. 120")
        _at_least("batch_size", self.batch_size, 1, "set batch_size to e.g. 32")
        _at_least("max_train", self.max_train, 1, "set max_train to e.g. 2000, or leave it out for all")
        _at_least("max_val", self.max_val, 1, "set max_val to e.g. 1000, or leave it out for all")
        if not isinstance(self.sampler, BaseSampler) and self.sampler not in SAMPLERS:
            raise OptionError(f"sampler {self.sampler!r} is unknown: set sampler to one of {', '.join(SAMPLERS)} "
                              "(or to an optuna.samplers.BaseSampler)", fields=("sampler",))
        for name, group in (("finalists", FinalistOptions), ("workers", WorkerOptions), ("storage", StorageOptions)):
            if not isinstance(getattr(self, name), group):
                raise OptionError(f"{name} must be a {group.__name__}, got {getattr(self, name)!r}", fields=(name,))
        if self.supernet is not None:
            if not isinstance(self.supernet, SupernetConfig):
                raise OptionError(f"supernet must be an autoc.supernet.SupernetConfig or None, got {self.supernet!r}",
                                  fields=("supernet",))
            # the supernet trains with the search's seed and batch size: one place for each
            object.__setattr__(self, "supernet", replace(self.supernet, seed=self.seed, batch_size=self.batch_size))

    def _check_budgets(self) -> None:
        if isinstance(self.budgets_ms, (str, bytes)) or not isinstance(self.budgets_ms, (tuple, list)):
            raise OptionError(f"budgets_ms must be a list of budgets in ms, got {self.budgets_ms!r}: set budgets_ms "
                              "to e.g. [12, 16, 20], or leave it out for the one budget budget_ms",
                              fields=("budgets_ms",))
        for budget in self.budgets_ms:
            _positive("budgets_ms", budget, "give each budget in ms, e.g. budgets_ms [12, 16, 20]")
        budgets = tuple(sorted({float(b) for b in self.budgets_ms}))
        if budgets and budgets[-1] > self.budget_ms:
            raise OptionError(f"budgets_ms holds {budgets[-1]:g} ms, above budget_ms {self.budget_ms:g}: budget_ms is "
                              f"the largest budget of the sweep; set budget_ms to {budgets[-1]:g}",
                              fields=("budgets_ms", "budget_ms"))
        if budgets and budgets[-1] < self.budget_ms:
            budgets = (*budgets, float(self.budget_ms))
        object.__setattr__(self, "budgets_ms", budgets if len(budgets) > 1 else ())

    @property
    def sweep_ms(self) -> tuple[float, ...]:
        """Every budget, smallest first: the sweep's, or the one budget_ms."""
        return self.budgets_ms or (float(self.budget_ms),)

    @property
    def sampler_name(self) -> str:
        """The sampler as stored with the study: its name, or an instance's class name."""
        return self.sampler if isinstance(self.sampler, str) else type(self.sampler).__name__

    def run_directory(self) -> Path:
        return self.storage.run_directory()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SearchOptions":
        """Options from plain data (a recipe file, stored options): groups as nested mappings,
        ``supernet`` a mapping of SupernetConfig fields or None. Unknown keys and wrong types raise
        OptionError naming the key (dotted for a group's field)."""
        return _build(cls, budget_list(values), prefix="")

    def to_dict(self) -> dict[str, Any]:
        """Plain data that ``from_dict`` reads back (paths as strings; a sampler instance as its class name)."""
        data = asdict(self)
        data["sampler"] = self.sampler_name
        if data["supernet"] is not None:
            for name in SUPERNET_SEARCH_FIELDS:
                del data["supernet"][name]
        for key in ("runs_dir", "run_dir"):
            if data["storage"][key] is not None:
                data["storage"][key] = str(data["storage"][key])
        return data


# SupernetConfig fields that a search sets from its own (seed, batch_size): not options of its supernet group.
SUPERNET_SEARCH_FIELDS = ("seed", "batch_size")
_GROUPS: dict[str, type] = {"supernet": SupernetConfig, "finalists": FinalistOptions, "workers": WorkerOptions,
                            "storage": StorageOptions}


def option_fields(cls: type = SearchOptions, prefix: str = "") -> dict[str, Any]:
    """Every option as ``{"dotted.path": default}`` (MISSING for a required one), groups expanded."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        group = _GROUPS.get(f.name) if cls is SearchOptions else None
        if group is not None:
            out.update(option_fields(group, prefix=f"{prefix}{f.name}."))
            continue
        if cls is SupernetConfig and f.name in SUPERNET_SEARCH_FIELDS:
            continue
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        out[prefix + f.name] = default
    return out


def field_default(path: str) -> Any:
    """The default of the option at dotted ``path`` (e.g. "supernet.lr"): the one place it is written."""
    return option_fields()[path]


def _build(cls: type, values: Mapping[str, Any], *, prefix: str) -> Any:
    if not isinstance(values, Mapping):
        where = prefix.rstrip(".") or "the options"
        raise OptionError(f"{where} must be a mapping of option names to values, got {values!r}",
                          fields=(prefix.rstrip("."),) if prefix else ())
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)} - (set(SUPERNET_SEARCH_FIELDS) if cls is SupernetConfig else set())
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in known:
            raise OptionError(f"unknown option {path!r}: use one of {', '.join(sorted(prefix + k for k in known))}",
                              fields=(path,))
        group = _GROUPS.get(key) if cls is SearchOptions else None
        if group is not None and value is not None and not isinstance(value, group):
            kwargs[key] = _build(group, value, prefix=f"{path}.")
        else:
            kwargs[key] = _typed(path, value, hints[key])
    try:
        return cls(**kwargs)
    except OptionError as error:
        raise error.within(prefix.rstrip(".")) if prefix else error from None
    except TypeError as error:  # a required field missing
        raise OptionError(f"{prefix or 'options'}: {error}", fields=()) from None


def budget_list(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """``values`` with a list of budgets given as ``budget_ms`` (``--budget-ms 12 16 20``, or a
    recipe's ``budget_ms: [12, 16, 20]``) as a sweep: budget_ms the largest, budgets_ms all of them;
    one budget in a list is that budget; ``budgets_ms`` alone sets budget_ms to its largest."""
    if not isinstance(values, Mapping):
        return values
    given = values.get("budget_ms")
    sweep = values.get("budgets_ms")
    if given is None and isinstance(sweep, (list, tuple)) and sweep:  # a sweep alone: budget_ms its largest
        given = sweep
    if not isinstance(given, (list, tuple)):
        return values
    for budget in given:
        _positive("budget_ms", budget, "give each budget in ms, e.g. budget_ms 12 16 20")
    if not given:
        raise OptionError("budget_ms must be one or more budgets in ms, got none: give e.g. budget_ms 20",
                          fields=("budget_ms",))
    budgets = [float(b) for b in given]
    return {**values, "budget_ms": max(budgets), "budgets_ms": budgets if len(set(budgets)) > 1 else []}


def _typed(path: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the field's annotation: None only where the field is optional,
    an int where a float is asked for, a string where a path is."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    if value is None:
        if type(None) in allowed:
            return None
    for kind in allowed:
        if typing.get_origin(kind) is tuple and isinstance(value, (list, tuple)):  # tuple[float, ...]
            item = typing.get_args(kind)[0]
            return tuple(_typed(path, v, item) for v in value)
        if kind is bool and isinstance(value, bool):
            return value
        if isinstance(value, bool):
            continue
        if kind is int and isinstance(value, int):
            return value
        if kind is float and isinstance(value, (int, float)):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if kind is Path and isinstance(value, (str, Path)):
            return Path(value)
        if isinstance(kind, type) and kind not in (bool, int, float, str, Path, type(None)) and isinstance(value, kind):
            return value
    names = " or ".join("null" if k is type(None) else getattr(k, "__name__", str(k)) for k in allowed)
    raise OptionError(f"option {path!r} takes {names}, got {value!r} ({type(value).__name__})", fields=(path,))


def stored_to_dict(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """The resumable options of a study's stored run options, as ``from_dict`` reads them: groups
    nested as stored now, or the flat keys (supernet_steps, supernet_lr, finalist_steps, ...) that
    studies stored before the groups carry."""
    if recorded.get("options_format") == OPTIONS_FORMAT:
        return {key: recorded[key] for key in (*STORED_TOP, "supernet", "finalists") if key in recorded}
    values = {key: recorded[key] for key in STORED_TOP if key in recorded}
    steps = int(recorded.get("supernet_steps") or 0)
    if steps > 0:
        recipe = {key[len("supernet_"):]: value for key, value in recorded.items()
                  if key.startswith("supernet_") and key != "supernet_steps"}
        values["supernet"] = {"steps": steps, **recipe}
    else:
        values["supernet"] = None
    flat = {"finalists": "count", "finalist_steps": "steps", "finalist_augment": "augment", "noise_trials": "noise_trials"}
    values["finalists"] = {new: recorded[old] for old, new in flat.items() if old in recorded}
    return values


# The top-level fields stored with a study for --resume (the groups supernet and finalists are too).
# budgets_ms: the sweep's budgets (studies from before sweeps lack it: one budget, the identity's budget_ms)
STORED_TOP = ("space", "dataset", "data_dir", "seed", "max_train", "max_val", "trials", "sampler",
              "finetune_steps", "teacher_steps", "batch_size", "device", "budgets_ms")
OPTIONS_FORMAT = 2  # stored run options with nested groups; absent: the flat keys of earlier studies


def stored_record(options: SearchOptions) -> dict[str, Any]:
    """What is stored with the study of ``options`` to resume it: STORED_TOP and the supernet and
    finalist groups as ``to_dict`` writes them."""
    data = options.to_dict()
    return {"options_format": OPTIONS_FORMAT, **{key: data[key] for key in STORED_TOP},
            "supernet": data["supernet"], "finalists": data["finalists"]}


def worker_threads(options: SearchOptions, *, cpus: int | None = None) -> int:
    """Torch threads of one worker (its CPU share, at least one), and of the teacher and supernet
    training before the trials: CPU training repeats bit for bit only at one thread count."""
    if options.workers.cpus is not None:
        return options.workers.cpus
    return max(1, (cpus or os.cpu_count() or 1) // options.workers.count)
