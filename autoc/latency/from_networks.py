"""A device profile fitted from whole-network latencies alone (what public data sets and many
users have: N architectures of a space, each timed end to end on the device).

CSV format (``.csv`` or ``.csv.gz``; ``#`` lines are comments)::

    index,layer0,layer1,...,layer21,pixel2_ms,...
    0,k5_e6,skip,...,k5_e1_g2,28

* architecture columns: either trial parameter names of the space (``stage1.block0.op``,
  ``stem.width``, ``stage3.depth``, ...) or ``layer0..layerK``, the per-block op of every
  block slot in network order (HW-NAS-Bench's convention; only for spaces of fixed depth).
  Searched parameters without a column take fp32 precision, 8 weight bits and keep ratio
  1.0 (the measured models are unpruned fp32); any other missing parameter is an error.
* the time column (``--column``, default ``<device>_ms``): end-to-end latency in ms, > 0.
* other columns (``index``, other devices' times) are ignored.

Model: every network is the sum of its units (``autoc.latency.blocks``) plus an intercept,
plus a cost per fp32 <-> int8 switch where the networks mix precisions. First a prior is
fitted, linear in the unit's work (``autoc.latency.blocks.prior_features``): per precision, a
cost per MMAC outside depthwise convs, per depthwise MMAC of each kernel size, per M activation
elements and a fixed part, all >= 0 by non-negative least squares on the relative error (int8 columns only
where int8 units were measured; the profile then declares int8 kernels); then each unit
key seen in the fitting networks gets its own cost, prior x (1 + u), by ridge regression
on u (shrinking towards the prior), the ridge strength chosen by leave-one-out error over
the fitting networks. Unit keys never seen cost their prior. Identical shapes at several
positions share one key, so 100 networks determine a table of ~100 keys well.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from autoc.candidate import Candidate
from autoc.errors import AutocError, DeviceError
from autoc.latency.blocks import DEPTHWISE_KERNELS, measurable_units, precision_transitions, prior_features
from autoc.latency.csv_input import CsvTable, read_csv
from autoc.latency.model import LookupTableLatencyModel
from autoc.latency.profile import (PRIOR_FEATURES, Correction, DeviceProfile, UnitPrior, data_identity,
                                   fit_relative_nonnegative)
from autoc.latency.validate import validation_figures
from autoc.space import SearchSpace, candidate_from_params, parameter_plan

logger = logging.getLogger(__name__)

MIN_FIT = 4  # networks the additive fit needs at the least
# The prior's columns: each feature its own; or, without precision terms (the fit before them),
# one cost per MAC, element and unit whatever the conv and precision.
_PRIOR_GROUPS = {name: (name,) for name in PRIOR_FEATURES}
# ... or, with few networks, one cost per depthwise MAC whatever the kernel (chosen by cross-validation)
_POOLED_DW_GROUPS = {
    name: (name,) if "_dw_" not in name else (name, *(f"{name.split('_')[0]}_dw_k{k}_mmac" for k in DEPTHWISE_KERNELS))
    for name in PRIOR_FEATURES if "_dw_k" not in name
}
PRIOR_FOLDS = 10
_UNIFORM_GROUPS = {
    f"fp32_{name}": tuple(f"{p}_{n}" for p in ("fp32", "int8") for n in names)
    for name, names in (("mmac", ("mmac", "dw_mmac", *(f"dw_k{k}_mmac" for k in DEPTHWISE_KERNELS))),
                        ("melement", ("melement",)), ("unit", ("unit",)))
}
LAYER_COLUMN = re.compile(r"layer(\d+)$")
RIDGE_GRID = tuple(10.0**e for e in np.arange(-4, 3.01, 0.5))
_DEFAULTS = {"precision": "fp32", "keep": 1.0}


@dataclass(frozen=True)
class MeasuredNetwork:
    """A network of the input CSV: its name, the candidate it builds and its measured latency."""

    name: str
    candidate: Candidate
    latency_ms: float


def read_networks(path: str | Path, *, space: SearchSpace, column: str) -> list[MeasuredNetwork]:
    """Every row of the CSV as a candidate of ``space`` with its measured latency."""
    table = read_csv(path, what="whole-network latency CSV")
    table.require([column], fix=f"choose column from: {', '.join(_time_columns(table))}",
                  fields=("column",))
    to_params = _column_mapping(table, space)
    networks = []
    for row in table.rows:
        params = {name: row.values[col] for name, col in to_params.items()}
        try:
            candidate = candidate_from_params(space, _typed(space, params))
            candidate.netspec()
        except AutocError as exc:  # one "file line N:" prefix, added here
            raise table.error(row, f"architecture outside space {space.name!r}: {exc}") from None
        name = row.values.get("index") or f"line{row.line}"
        networks.append(MeasuredNetwork(name, candidate, table.milliseconds(row, column)))
    return networks


def _time_columns(table: CsvTable) -> list[str]:
    return [c for c in table.columns if c.endswith("_ms")] or list(table.columns)


def _column_mapping(table: CsvTable, space: SearchSpace) -> dict[str, str]:
    """Searched parameter name -> CSV column holding it."""
    plan = [p for p in parameter_plan(space) if p.searched]
    mapping = {p.name: p.name for p in plan if p.name in table.columns}
    layers = sorted((int(m.group(1)), c) for c in table.columns if (m := LAYER_COLUMN.match(c)))
    if layers:
        if any(len(stage.depths) > 1 for stage in space.stages):
            raise DeviceError(
                f"{table.path} line {table.header_line}: layerN columns need a space of fixed depth, but "
                f"{space.name!r} searches depths; name the columns by trial parameter (stage{{s}}.block{{b}}.op)"
            )
        slots = [p.name for p in plan if p.kind == "op"]
        if [n for n, _ in layers] != list(range(len(slots))):
            raise DeviceError(
                f"{table.path} line {table.header_line}: columns layer0..layer{len(slots) - 1} expected for the "
                f"{len(slots)} searched blocks of {space.name!r}, found {[c for _, c in layers]}; "
                "use the space the data was measured in"
            )
        mapping |= {slot: column for slot, (_, column) in zip(slots, layers)}
    missing = [p.name for p in plan if p.name not in mapping and p.kind not in ("precision", "keep", "wbits")]
    if missing:
        raise DeviceError(
            f"{table.path} line {table.header_line}: no column for the searched parameter(s) {missing} of space "
            f"{space.name!r}; add them (named as trial parameters), or use layerN columns for block ops"
        )
    return mapping


def _typed(space: SearchSpace, params: Mapping[str, str]) -> dict[str, object]:
    """CSV strings to the plan's choice types; unlisted compression parameters at their defaults."""
    values: dict[str, object] = {}
    for p in parameter_plan(space):
        if not p.searched:
            continue
        if p.name not in params:
            default = _DEFAULTS.get(p.kind, p.choices[0])
            if default not in p.choices:
                raise DeviceError(f"no column for {p.name} and its default {default!r} is not a choice")
            values[p.name] = default
            continue
        text = params[p.name]
        matches = [c for c in p.choices if str(c) == text or (not isinstance(c, str) and _number(text) == c)]
        if not matches:
            raise DeviceError(f"{p.name} = {text!r} is not one of {list(p.choices)}")
        values[p.name] = matches[0]
    return values


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class AdditiveFit:
    """A fit of whole-network times as a sum of per-unit times plus an intercept and a cost per
    precision transition; ``prior`` prices units the fitting networks did not contain."""

    blocks: dict[str, float]
    prior: UnitPrior
    intercept_ms: float
    ridge: float
    ms_per_transition: float = 0.0
    precisions: tuple[str, ...] = ("fp32",)  # those the fitting networks ran


def fit_additive(networks: Sequence[MeasuredNetwork], *, precision_terms: bool = True) -> AdditiveFit:
    """Per-unit-key costs from whole-network times (see the module docstring).

    ``precision_terms=False`` leaves out the int8 MAC cost and the switch cost (and declares
    fp32 kernels only), as fits did before them: for comparisons."""
    if len(networks) < MIN_FIT:
        raise DeviceError(f"fitting from whole networks needs at least {MIN_FIT} measured networks, got {len(networks)}")
    unit_lists = [measurable_units(n.candidate.netspec(), n.candidate.policy) for n in networks]
    keys = sorted({u.key for units in unit_lists for u in units})
    index = {k: i for i, k in enumerate(keys)}
    by_key = {u.key: u for units in unit_lists for u in units}
    counts = np.zeros((len(networks), len(keys)))
    for i, units in enumerate(unit_lists):
        for u in units:
            counts[i, index[u.key]] += 1
    y = np.array([n.latency_ms for n in networks])
    mixed = precision_terms and any(by_key[k].precision == "int8" for k in keys)
    switches = np.array([precision_transitions(u.precision for u in units) for units in unit_lists], dtype=float)
    switches *= mixed

    network_columns = np.hstack([np.ones((len(y), 1)), *([switches[:, None]] if switches.any() else [])])
    # per key, the prior's features; columns that no unit has are left out (their costs fall back)
    choices = (_PRIOR_GROUPS, _POOLED_DW_GROUPS) if precision_terms else (_UNIFORM_GROUPS,)
    priors = [_prior_design(groups, [prior_features(by_key[k]) for k in keys], counts, network_columns)
              for groups in choices]
    groups, used, features, design = min(priors, key=lambda p: _prior_cv_error(p[3], y))
    coef = fit_relative_nonnegative(design, y)
    width = features.shape[1]
    key_coef, intercept = coef[:width], float(coef[width])
    ms_per_transition = float(coef[width + 1]) if switches.any() else 0.0
    fitted = dict(zip([name for name, keep in zip(groups, used) if keep], map(float, key_coef)))
    prior = UnitPrior({member: fitted[name] for name, members in groups.items() if name in fitted for member in members})
    prior_ms = np.maximum(features @ key_coef, 1e-6)

    base = counts @ prior_ms + intercept + ms_per_transition * switches
    a = counts * prior_ms[None, :] / y[:, None]
    b = (y - base) / y
    ridge = _best_ridge(a, b)
    u = np.linalg.solve(a.T @ a + ridge * np.eye(len(keys)), a.T @ b)
    costs = np.maximum(prior_ms * (1 + u), 0.0)
    return AdditiveFit(dict(zip(keys, map(float, costs))), prior, intercept, ridge, ms_per_transition,
                       ("fp32", "int8") if mixed else ("fp32",))


def _prior_design(groups, per_key, counts, network_columns):
    """(groups, columns used, per-key features, per-network design) of one prior grouping."""
    full = np.array([[sum(f.get(m, 0.0) for m in members) for members in groups.values()] for f in per_key])
    used = full.any(axis=0)
    features = full[:, used]
    return groups, used, features, np.hstack([counts @ features, network_columns])


def _prior_cv_error(design: np.ndarray, y: np.ndarray) -> float:
    """Mean squared relative error of the prior on networks left out of its fit (``PRIOR_FOLDS``
    interleaved folds; leave-one-out below that many networks)."""
    folds = min(PRIOR_FOLDS, len(y))
    errors = []
    for fold in range(folds):
        test = np.arange(len(y)) % folds == fold
        coef = fit_relative_nonnegative(design[~test], y[~test])
        errors.extend((design[test] @ coef - y[test]) / y[test])
    return float(np.mean(np.square(errors)))


def _best_ridge(a: np.ndarray, b: np.ndarray) -> float:
    """The grid strength with the least leave-one-out squared error (closed form via the hat matrix)."""
    best, best_err = RIDGE_GRID[0], np.inf
    gram = a @ a.T
    for ridge in RIDGE_GRID:
        # Hat matrix of ridge in its dual form: A (A'A + rI)^-1 A' = G (G + rI)^-1 with G = AA'.
        hat = gram @ np.linalg.inv(gram + ridge * np.eye(len(b)))
        residual = (b - hat @ b) / np.maximum(1 - np.diag(hat), 1e-9)
        err = float(np.mean(residual**2))
        if err < best_err:
            best, best_err = ridge, err
    return best


def networks_profile(
    *,
    device: str,
    fit: AdditiveFit,
    space: SearchSpace,
    source_file: str,
    column: str,
    created: str | None = None,
) -> DeviceProfile:
    """The device profile of ``fit``, recording the source file, the column and the space it was fitted for."""
    identity = data_identity(
        f"whole-network times from {Path(source_file).name}, column {column}", created=created, precisions=fit.precisions
    )
    return DeviceProfile(
        device=device,
        identity=identity,
        blocks=fit.blocks,
        correction=Correction(scale=1.0, intercept_ms=fit.intercept_ms, ms_per_transition=fit.ms_per_transition),
        source="networks",
        space={"name": space.name, "fingerprint": space.fingerprint()},
        prior=fit.prior,
    )


def validate_on(model: LookupTableLatencyModel, networks: Sequence[MeasuredNetwork]) -> dict:
    """Figures of ``model`` on measured networks it was not fitted on."""
    predicted = [model.predict(n.candidate.netspec(), n.candidate.policy) for n in networks]
    return validation_figures(
        measured=[n.latency_ms for n in networks], predicted=predicted, names=[n.name for n in networks]
    )


def split_fit_held_out(
    networks: Sequence[MeasuredNetwork], *, fit: int | None, seed: int = 0, source: str = "the CSV"
) -> tuple[list[MeasuredNetwork], list[MeasuredNetwork]]:
    """A seeded random ``fit`` networks to fit (default 80 %), the rest held out: at least one,
    so that the figures a profile records are never in-sample ones labelled held-out."""
    count = len(networks)
    if count < MIN_FIT + 1:
        raise DeviceError(
            f"{source} has {count} network(s); fitting needs at least {MIN_FIT} plus 1 held out "
            f"({MIN_FIT + 1} rows): add measured networks to it"
        )
    fit = max(MIN_FIT, int(0.8 * count)) if fit is None else fit
    if fit < MIN_FIT:
        raise DeviceError(f"fit {fit} is too few: fitting needs at least {MIN_FIT} networks; give fit {MIN_FIT} or more",
                          fields=("fit",))
    if fit >= count:
        raise DeviceError(
            f"fit {fit} leaves none of the {count} networks in {source} held out for validation; "
            f"give fit at most {count - 1}", fields=("fit",)
        )
    order = np.random.default_rng(seed).permutation(count)
    return [networks[i] for i in order[:fit]], [networks[i] for i in order[fit:]]


def profile_from_csv(
    path: str | Path,
    *,
    device: str,
    space: SearchSpace,
    column: str | None = None,
    fit: int | None = None,
    seed: int = 0,
    created: str | None = None,
) -> DeviceProfile:
    """``device``'s profile fitted on a seeded ``fit`` networks of the CSV at ``path`` (column
    ``column``, default ``<device>_ms``), with validation figures on the rest, all held out."""
    column = column or f"{device}_ms"
    networks = read_networks(path, space=space, column=column)
    fitting, held_out = split_fit_held_out(networks, fit=fit, seed=seed, source=str(path))
    logger.info("fitting on %d networks, validating on %d", len(fitting), len(held_out))
    profile = networks_profile(device=device, fit=fit_additive(fitting), space=space, source_file=str(path),
                               column=column, created=created)
    model = LookupTableLatencyModel(profile, profile_path=None, measure_missing=False)
    validation = validate_on(model, held_out) | {
        "in_sample": False, "fit_networks": len(fitting), "seed": seed, "source_file": Path(path).name,
    }
    return replace(profile, validation=validation)
