"""Latency of a compressed user model: a lookup table of its layers, measured in ONNX Runtime.

Each conv and linear layer of the model, at the channel counts a policy leaves it and the precision
it runs at, is one unit: a one-layer ONNX program timed alone (``autoc.latency.measure``'s
protocol). A network's prediction is the sum of its units through the same whole-network
correction a device profile fits (``autoc.latency.profile.Correction``): what isolated layers
leave out (residual adds, pooling, squeeze-excite products, layout changes) is fitted on a few
compressed variants measured whole.
"""
from __future__ import annotations

import itertools
import random
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from autoc.evaluate.metrics import layer_storage_bits
from autoc.arch.policy import LayerPolicy
from autoc.errors import DeviceError
from autoc.latency.blocks import precision_transitions
from autoc.latency.calibrate import fit_correction
from autoc.latency.measure import measure_interleaved
from autoc.latency.profile import Correction
from autoc.modelspace.compress import ModelPolicy
from autoc.modelspace.groups import WEIGHT_LAYERS, ModelStructure
from autoc.modelspace.prune import choose_channels, prune
from autoc.onnx.export import export_onnx

INT8_LAYER = LayerPolicy(precision="int8", weight_bits=8, act_bits=8)
UNIT_WARMUP = 10
UNIT_REPEATS = 60
NETWORK_WARMUP = 5
NETWORK_REPEATS = 30
# Compressed variants timed whole to fit a table's correction, and held out to check it: 16
# lets the correction scale int8 layers apart (autoc.latency.calibrate), and spread variants
# (``random_policies``) reach the heavily compressed policies low budgets choose.
FIT_VARIANTS, HELD_OUT_VARIANTS = 16, 8


@dataclass(frozen=True)
class Layer:
    """One conv or linear layer's geometry, at the channel counts and precision it runs with."""

    name: str
    kind: str  # "conv" or "linear"
    cin: int
    cout: int
    input_hw: tuple[int, int] = (1, 1)
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    precision: str = "fp32"

    @property
    def depthwise(self) -> bool:
        return self.kind == "conv" and self.groups > 1 and self.groups == self.cin

    @property
    def weights(self) -> int:
        """How many weights the layer holds."""
        return self.cout * (self.cin // self.groups) * self.kernel[0] * self.kernel[1]

    @property
    def key(self) -> str:
        """Everything that changes the layer's time, so equal keys share one measurement."""
        if self.kind == "linear":
            return f"linear-c{self.cin}-o{self.cout}-{self.precision}"
        groups = "dw" if self.depthwise else str(self.groups)
        geometry = "-".join(f"{a}{x}x{y}" for a, (x, y) in
                            (("k", self.kernel), ("s", self.stride), ("p", self.padding), ("d", self.dilation)))
        return (f"conv-r{self.input_hw[0]}x{self.input_hw[1]}-c{self.cin}-o{self.cout}-{geometry}-g{groups}"
                f"-{self.precision}")

    def program(self) -> tuple[bytes, tuple[int, ...]]:
        """The layer alone as an ONNX program, and its input shape (one image)."""
        if self.kind == "linear":
            module, shape = nn.Sequential(nn.Linear(self.cin, self.cout)), (1, self.cin)
        else:
            module = nn.Sequential(nn.Conv2d(self.cin, self.cout, self.kernel, self.stride, self.padding,
                                             self.dilation, self.groups if not self.depthwise else self.cout))
            shape = (1, self.cin, *self.input_hw)
        int8 = frozenset({"0"}) if self.precision == "int8" else frozenset()
        return export_onnx(module.eval(), input_shape=shape, int8_layers=int8), shape


def model_layers(model: nn.Module, example_input: torch.Tensor) -> tuple[Layer, ...]:
    """Every conv and linear layer of ``model`` as it runs on one image shaped like ``example_input``."""
    seen: dict[str, Layer] = {}
    names = {module: name for name, module in model.named_modules()}

    def record(module, inputs, _output):
        name = names[module]
        if name in seen:
            return
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            seen[name] = Layer(name=name, kind="conv", cin=module.in_channels, cout=module.out_channels,
                               input_hw=(int(x.shape[-2]), int(x.shape[-1])), kernel=tuple(module.kernel_size),
                               stride=tuple(module.stride), padding=tuple(module.padding),
                               dilation=tuple(module.dilation), groups=module.groups)
        else:
            seen[name] = Layer(name=name, kind="linear", cin=module.in_features, cout=module.out_features)

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input[:1])
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return tuple(seen[name] for name in names.values() if name in seen)


def policy_layers(layers: Sequence[Layer], structure: ModelStructure, policy: ModelPolicy) -> tuple[Layer, ...]:
    """``layers`` at the channel counts and precisions ``policy`` leaves them."""
    keep = dict(policy.keep)
    removed: dict[tuple[str, str], int] = defaultdict(int)
    for group in structure.groups:
        ratio = keep.get(group.name, 1.0)
        gone = group.channels - group.kept(ratio, multiple=policy.multiple) if ratio < 1.0 else 0
        for layer, side, count in group.ties:
            removed[layer, side] += gone * count // group.channels
    out = []
    for layer in layers:
        cout = layer.cout - removed[layer.name, "out"]
        if layer.depthwise:
            cin = groups = cout  # a depthwise conv's inputs are its outputs' channels
        else:
            cin, groups = layer.cin - removed[layer.name, "in"], layer.groups
        precision = policy.layers.get(layer.name).precision
        out.append(replace(layer, cin=cin, cout=cout, groups=groups, precision=precision))
    return tuple(out)


def policy_size_bytes(layers: Sequence[Layer], policy: ModelPolicy) -> int:
    """Bytes to store the model whose layers ``policy_layers`` gives ``layers``: each conv and linear
    layer's weights at its bit width and sparsity, and a fp32 bias per output
    (``autoc.evaluate.metrics.layer_storage_bits``, which defines size for autoc's own networks too;
    BatchNorm folds into those biases)."""
    bits = sum(layer_storage_bits(layer.weights, outputs=layer.cout, layer=policy.layers.get(layer.name))
               for layer in layers)
    return (bits + 7) // 8


@dataclass
class LayerTable:
    """Measured ms per unit key, and the whole-network correction; predicts compressed networks."""

    units_ms: dict[str, float]
    correction: Correction = Correction()
    channel_multiple: int | None = None  # the multiple kept channel counts round to (autoc.modelspace.multiple)
    device: str | None = None  # None: this host's table, its missing units measured here; else imported for device

    def missing(self, layers: Iterable[Layer]) -> list[Layer]:
        """One layer per unit key the table has no time for."""
        todo: dict[str, Layer] = {}
        for layer in layers:
            if layer.key not in self.units_ms:
                todo.setdefault(layer.key, layer)
        return list(todo.values())

    def measure(self, layers: Iterable[Layer], *, threads: int = 1, warmup: int = UNIT_WARMUP,
                repeats: int = UNIT_REPEATS) -> int:
        """Time every unit of ``layers`` the table lacks (interleaved, one batch); returns how many."""
        todo = self.missing(layers)
        if todo and self.device is not None:
            raise DeviceError(f"the latency table of device {self.device!r} has no time for {len(todo)} unit(s), "
                              f"e.g. {todo[0].key}, and they cannot be measured on this host; export a pack for the "
                              "model with these keep choices and import its results "
                              "(autoc calibrate --model ... --export-pack)")
        if todo:
            programs = [layer.program() for layer in todo]
            figures = measure_interleaved([p for p, _ in programs], input_shapes=[s for _, s in programs],
                                          threads=threads, warmup=warmup, repeats=repeats)
            self.units_ms.update({layer.key: m.figure_ms for layer, m in zip(todo, figures)})
        return len(todo)

    def unit_sums(self, layers: Sequence[Layer]) -> tuple[float, float, int]:
        """(sum of unit ms, int8 units' part of it, fp32 <-> int8 switches along the layers)."""
        return self.key_sums([layer.key for layer in layers])

    def key_sums(self, keys: Sequence[str]) -> tuple[float, float, int]:
        """:meth:`unit_sums` of the layers with these unit keys, in order (a key ends in its precision)."""
        precisions = [key.rsplit("-", 1)[-1] for key in keys]
        total = sum(self.units_ms[key] for key in keys)
        int8 = sum(self.units_ms[key] for key, p in zip(keys, precisions) if p == "int8")
        return total, int8, precision_transitions(precisions)

    def predict_ms(self, layers: Sequence[Layer]) -> float:
        return self.predict_keys([layer.key for layer in layers])

    def predict_keys(self, keys: Sequence[str]) -> float:
        """The predicted ms of a network whose layers have these unit keys, in order."""
        total, int8, switches = self.key_sums(keys)
        return self.correction.apply(total, transitions=switches, int8_ms=int8)

    def to_dict(self) -> dict:
        return {"units_ms": dict(sorted(self.units_ms.items())), "correction": vars(self.correction).copy(),
                "channel_multiple": self.channel_multiple}

    @classmethod
    def from_dict(cls, data: Mapping) -> "LayerTable":
        return cls(units_ms={str(k): float(v) for k, v in data["units_ms"].items()},
                   correction=Correction(**data.get("correction", {})), channel_multiple=data.get("channel_multiple"))


def network_program(model: nn.Module, policy: ModelPolicy, *, example_input: torch.Tensor) -> bytes:
    """The model compressed by ``policy`` (pruned; int8 on its int8 layers) as one ONNX program."""
    pruned = prune(model, choose_channels(model, dict(policy.keep), example_input=example_input,
                                          multiple=policy.multiple), example_input=example_input)
    int8 = frozenset(name for name, layer in policy.layers.layers if layer.precision == "int8")
    return export_onnx(pruned, input_shape=tuple(example_input[:1].shape), int8_layers=int8)


def measure_networks(model: nn.Module, policies: Sequence[ModelPolicy], *, example_input: torch.Tensor,
                     threads: int = 1, repeats: int = NETWORK_REPEATS) -> list[float]:
    """Each policy's compressed network timed whole (``network_program``), interleaved: ms each."""
    programs = [network_program(model, p, example_input=example_input) for p in policies]
    shape = tuple(example_input[:1].shape)
    return [m.figure_ms for m in measure_interleaved(programs, input_shapes=[shape] * len(programs), threads=threads,
                                                     warmup=NETWORK_WARMUP, repeats=repeats)]


@dataclass(frozen=True)
class Calibrated:
    """A fitted table and how well it predicts networks it was not fitted on."""

    table: LayerTable
    fitted_on: int
    held_out_errors: tuple[float, ...]  # (predicted - measured) / measured per held-out network


def calibrate(model: nn.Module, structure: ModelStructure, policies: Sequence[ModelPolicy], *,
              example_input: torch.Tensor, held_out: Sequence[ModelPolicy] = (), table: LayerTable | None = None,
              threads: int = 1, network_repeats: int = NETWORK_REPEATS) -> Calibrated:
    """Measure the units of ``policies`` (and ``held_out``), time each whole, fit the correction on
    ``policies`` and report the relative error on ``held_out``."""
    table = table or LayerTable(units_ms={})
    layers = model_layers(model, example_input)
    per_policy = [policy_layers(layers, structure, p) for p in (*policies, *held_out)]
    table.measure([layer for net in per_policy for layer in net], threads=threads)
    measured = measure_networks(model, (*policies, *held_out), example_input=example_input, threads=threads,
                                repeats=network_repeats)
    sums = [table.unit_sums(net) for net in per_policy]
    fit = len(policies)
    table.correction = fit_correction([s[0] for s in sums[:fit]], measured[:fit],
                                      transitions=[s[2] for s in sums[:fit]], int8_sums=[s[1] for s in sums[:fit]])
    errors = tuple((table.predict_ms(net) - ms) / ms for net, ms in zip(per_policy[fit:], measured[fit:]))
    return Calibrated(table=table, fitted_on=fit, held_out_errors=errors)


def calibration_policies(structure: ModelStructure, *, keep_choices: Sequence[float], seed: int,
                         multiple: int = 1) -> tuple[list[ModelPolicy], list[ModelPolicy]]:
    """The variants a table's correction is fitted on (the original model first) and those held out
    to check it: the same for a host calibration and a device's pack, given the same seed."""
    fit = [ModelPolicy.of()] + random_policies(structure, FIT_VARIANTS - 1, seed=seed, keep_choices=keep_choices,
                                               multiple=multiple)
    return fit, random_policies(structure, HELD_OUT_VARIANTS, seed=seed + 1, keep_choices=keep_choices,
                                multiple=multiple)


def reachable_layers(layers: Sequence[Layer], structure: ModelStructure, *,
                     keep_choices: Sequence[float]) -> tuple[Layer, ...]:
    """Every unit a search with ``keep_choices`` (and the original model) can time: each layer at every
    channel count the groups tied to it can leave it, fp32, and int8 where the layer is offered int8;
    one layer per unit key."""
    ratios = sorted({*keep_choices, 1.0})
    touching: dict[str, list[str]] = defaultdict(list)
    for group in structure.groups:
        for layer, _, _ in group.ties:
            if group.name not in touching[layer]:
                touching[layer].append(group.name)
    found: dict[str, Layer] = {}
    for layer in layers:
        names = touching[layer.name]
        precisions = [INT8_LAYER, None] if layer.name in structure.int8_layers else [None]
        for combo in itertools.product(ratios, repeat=len(names)):
            for precision in precisions:
                policy = ModelPolicy.of(keep={n: r for n, r in zip(names, combo) if r < 1.0},
                                        layers={layer.name: precision} if precision else None)
                [unit] = policy_layers([layer], structure, policy)
                found.setdefault(unit.key, unit)
    return tuple(found.values())


def random_policies(structure: ModelStructure, count: int, *, seed: int, keep_choices: Sequence[float],
                    int8_share: float | None = None, multiple: int = 1) -> list[ModelPolicy]:
    """``count`` policies to fit and check a table on, spread from barely to fully compressed.

    Each policy draws a cap among ``keep_choices`` and gives every channel group a keep ratio
    drawn from the choices up to it, and each layer offered int8 (``ModelStructure.int8_layers``)
    int8 with a probability drawn per policy (``int8_share`` fixes it). A budget well below the
    original's is met by heavily pruned, mostly int8 policies: variants drawn around the middle
    of the space leave the table's correction to extrapolate there."""
    rng = random.Random(seed)
    int8 = INT8_LAYER
    convs = structure.int8_layers
    choices = sorted(keep_choices)
    policies = []
    for _ in range(count):
        cap = rng.randrange(len(choices))
        share = int8_share if int8_share is not None else rng.random()
        keep = {g.name: rng.choice(choices[:cap + 1]) for g in structure.groups}
        layers = {name: int8 for name in convs if rng.random() < share}
        policies.append(ModelPolicy.of(keep={k: v for k, v in keep.items() if v < 1.0}, layers=layers,
                                       multiple=multiple))
    return policies
