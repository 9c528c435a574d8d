"""Policy files (schema ``autoc.policy/2``): everything needed to rebuild a found model and feed it.

``/2`` adds the preprocessing (input size, resize, mean/std, class names) to ``/1``, whose
files still load (with ``preprocessing`` None).

Loading checks, in order: JSON syntax, the schema version, the JSON Schema shipped with
autoc (field names, types, ranges), the layer names against the architecture, the
channel ties the architecture imposes, and that the search space it names is installed
with the same content. Each failure is a PolicyError naming the file, the field and the fix.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from autoc.arch.builder import AutocNet, build_model
from autoc.arch.netspec import HEAD, NetSpec
from autoc.candidate import Candidate
from autoc.compress.quant import apply_quantization
from autoc.data.preprocessing import Preprocessing
from autoc.errors import DataError, PolicyError, SpaceError, first_line
from autoc.files import write_text_atomic
from autoc.policy.schema import SCHEMA_ID, validate_policy_document

SCHEMA = SCHEMA_ID
METRIC_KEYS = ("accuracy", "latency_ms", "size_bytes", "macs", "params")


@dataclass(frozen=True)
class PolicyFile:
    """A search's policy file: the candidate, the space it came from, its metrics and where its weights are."""

    candidate: Candidate
    space: dict[str, Any]  # {"name", "fingerprint", optional "source"}: see space_reference
    metrics: dict[str, float]
    device: str
    study: str
    trial: int
    weights: str | None = None  # path relative to the policy file
    path: Path | None = field(default=None, compare=False)
    # how raw images become the model's input; None for /1 files and studies that did not record it
    preprocessing: Preprocessing | None = None

    def netspec(self) -> NetSpec:
        """The pruned network plan the model is built from."""
        return self.candidate.netspec()

    def weights_path(self) -> Path | None:
        if self.weights is None:
            return None
        base = self.path.parent if self.path is not None else Path.cwd()
        return base / self.weights

    def build_model(self, *, weights: str | Path | None = "auto") -> AutocNet:
        """Rebuild the compressed model (pruned shapes, fake quantisers where int8), in eval mode.

        ``weights="auto"`` loads the weights the file names (an error if they are missing);
        ``None`` leaves fresh initial weights; a path loads that state dict.
        """
        model = apply_quantization(build_model(self.netspec()), self.candidate.policy)
        path = self.weights_path() if weights == "auto" else (Path(weights) if weights is not None else None)
        if path is not None:
            load_weights(model, path)
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema": SCHEMA,
            "space": self.space,
            **self.candidate.to_dict(),
            "metrics": self.metrics,
            "device": self.device,
            "study": self.study,
            "trial": self.trial,
        }
        if self.weights is not None:
            data["weights"] = self.weights
        if self.preprocessing is not None:
            data["preprocessing"] = self.preprocessing.to_dict()
        return data


def load_weights(model: AutocNet, path: Path) -> None:
    """Load the state dict at ``path`` into ``model``; a missing, corrupt or mismatched file is a PolicyError."""
    if not path.is_file():
        raise PolicyError(f"weights file {path} does not exist; pass weights=None for an untrained model")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError) as exc:  # truncated or not a torch file
        raise PolicyError(
            f"weights file {path} is corrupt or truncated ({first_line(exc)[:120]}); that trial's weights are lost: "
            "export another trial (autoc export --trial N) or train this policy from scratch"
        ) from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise PolicyError(
            f"weights file {path} does not fit the policy's model ({first_line(exc)}); "
            "give the weights saved with this policy, or weights=None"
        ) from None


def record_metrics(record) -> dict[str, float]:
    """The ``metrics`` of a policy file from a stored trial's record (a TrialRecord)."""
    return {key: getattr(record, key) for key in METRIC_KEYS}


def space_reference(space) -> dict[str, str]:
    """How a policy file names its search space: name, content fingerprint, and the file read."""
    reference = {"name": space.name, "fingerprint": space.fingerprint()}
    if space.source and Path(space.source).is_file():
        reference["source"] = str(Path(space.source).resolve())
    return reference


def policy_json(policy: PolicyFile) -> str:
    """The policy file's JSON text."""
    return json.dumps(policy.to_dict(), indent=2) + "\n"


def write_policy(policy: PolicyFile, path: Path) -> Path:
    """Write atomically: a reader never sees half a file."""
    return write_text_atomic(Path(path), policy_json(policy))


def load_policy(path: str | Path, *, check_space: bool = True) -> PolicyFile:
    """Read and check a policy file. ``check_space=False`` skips only the installed-space check,
    for rebuilding a model where the search space is not installed."""
    path = Path(path)
    data = _read_json(path)
    validate_policy_document(data, source=str(path))
    try:
        candidate = Candidate.from_dict(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None
    check_layer_names(candidate, source=str(path))
    try:
        candidate.netspec()  # channel ties: tied layers must share keep ratios
    except PolicyError as exc:
        raise PolicyError(f"{path}: field policy: {exc}") from None
    if check_space:
        check_in_space(candidate, check_space_installed(data["space"], source=str(path)), source=str(path))
    preprocessing = None
    if "preprocessing" in data:
        try:
            preprocessing = Preprocessing.from_dict(data["preprocessing"])
        except DataError as exc:
            raise PolicyError(f"{path}: field preprocessing: {exc}") from None
        if preprocessing.input_size != candidate.arch.input_size:
            raise PolicyError(f"{path}: field preprocessing.input_size: {preprocessing.input_size} differs from the "
                              f"architecture's input_size {candidate.arch.input_size}; re-export the trial with "
                              "autoc export")
    return PolicyFile(
        candidate=candidate,
        space=dict(data["space"]),
        metrics=dict(data["metrics"]),
        device=data["device"],
        study=data["study"],
        trial=data["trial"],
        weights=data.get("weights"),
        path=path,
        preprocessing=preprocessing,
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist; give the path of a best_policy.json") from None
    except IsADirectoryError:
        raise PolicyError(f"{path} is a directory; give the path of a policy .json file") from None
    except json.JSONDecodeError as exc:
        raise PolicyError(
            f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); "
            "re-export it with autoc export"
        ) from None
    except UnicodeDecodeError:
        raise PolicyError(f"{path} is not a UTF-8 text file; give the path of a policy .json file") from None


def valid_layer_names(candidate: Candidate) -> list[str]:
    """Names a policy may use: the conv layers of the unpruned architecture, and ``head``
    (which also sets the precision of pooling and classifier when there is no head conv)."""
    names = candidate.full_netspec().layer_names()
    return names if HEAD in names else [*names, HEAD]


def check_layer_names(candidate: Candidate, *, source: str) -> None:
    """Check the policy has an entry for every layer of the architecture and none else."""
    valid = valid_layer_names(candidate)
    unknown = sorted(set(candidate.policy.to_dict()) - set(valid))
    if unknown:
        raise PolicyError(
            f"{source}: field policy: layer(s) {unknown} are not layers of the file's architecture; "
            f"its layers are {valid}; remove those entries or fix the arch"
        )
    # A layer left out would silently run fp32 and unpruned: not what any search found. Without a
    # head conv, ``head`` only sets the classifier's precision; a search leaves it out (fp32).
    missing = [name for name in candidate.full_netspec().layer_names() if name not in candidate.policy.to_dict()]
    if missing:
        raise PolicyError(
            f"{source}: field policy: layer(s) {missing} of the file's architecture have no entry; give each "
            'its policy, e.g. {"keep_ratio": 1.0, "precision": "fp32"}, or re-export the trial with autoc export'
        )


def check_in_space(candidate: Candidate, space, *, source: str) -> None:
    """The architecture and policy are choices of the space the file names: a hand-edited value
    outside it (stem width 17) builds a network no search could find, with no latency in its profile."""
    arch, problems = candidate.arch, []

    def expect(what: str, value, allowed) -> None:
        if value not in allowed:
            problems.append(f"{what} {value!r} is not one of {sorted(set(allowed))}")

    expect("input_size", arch.input_size, space.resolutions)
    expect("stem width", arch.stem_width, space.stem.widths)
    expect("stem stride", arch.stem_stride, [space.stem.stride])
    expect("head width", arch.head_width, space.head.widths)
    expect("number of stages", len(arch.stages), [len(space.stages)])
    for i, (stage, allowed) in enumerate(zip(arch.stages, space.stages)):
        expect(f"stage {i} width", stage.width, allowed.widths)
        expect(f"stage {i} stride", stage.stride, [allowed.stride])
        expect(f"stage {i} depth", stage.depth, allowed.depths)
        expect(f"stage {i} activation", stage.activation, [allowed.activation])
        expect(f"stage {i} se", (stage.se, stage.se_ratio), [(allowed.se, allowed.se_ratio)])
        for b, op in enumerate(stage.ops):
            expect(f"stage {i} block {b} op", op.name, allowed.op_names)
    compression = space.compression
    for name, layer in candidate.policy.layers:
        expect(f"layer {name} keep_ratio", layer.keep_ratio, (*compression.keep_ratios, 1.0))
        expect(f"layer {name} precision", layer.precision, compression.precisions)
        if layer.precision == "int8":
            expect(f"layer {name} weight_bits", layer.weight_bits, compression.weight_bits)
    if problems:
        raise PolicyError(f"{source}: the file's candidate is outside its search space {space.name!r}: "
                          f"{problems[0]}{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; "
                          "re-export the trial with autoc export, or fix the value")


def check_space_installed(reference: Mapping[str, str], *, source: str):
    """The installed SearchSpace the policy names, with the same fingerprint; else PolicyError.

    The space is looked up by name (``search_spaces/``) and then by the file it was read
    from during the search, so studies on a space given as a path keep working.
    """
    from autoc.space import load_space
    from autoc.space.loader import space_dirs

    name, fingerprint, origin = reference["name"], reference["fingerprint"], reference.get("source")
    found = []
    for where in (name, Path(origin) if origin else None):
        if where is None:
            continue
        try:
            space = load_space(where)
        except SpaceError:
            continue
        if space.fingerprint() == fingerprint:
            return space
        found.append(space)
    if found:
        raise PolicyError(
            f"{source}: field space: search space {name!r} at {found[0].source} has changed since the "
            f"policy was found (fingerprint {found[0].fingerprint()[:12]}..., the file says {fingerprint[:12]}...); "
            "install the space file the search used, or load with check_space=False to rebuild from the file alone"
        )
    where = [str(d) for d in space_dirs()] + ([origin] if origin else [])
    raise PolicyError(
        f"{source}: field space: search space {name!r} is not installed (looked in {where}); "
        f"install its YAML as search_spaces/{name}.yaml, or load with check_space=False "
        "to rebuild the model from the file alone"
    )
