"""Parsed YAML (plain dicts and lists) -> SearchSpace, with one-line errors naming file, key and value."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from autoc.arch.config import ACTIVATIONS, SE_RATIO, BlockOp
from autoc.errors import PolicyError, SpaceError
from autoc.space.model import CompressionSpace, HeadSpace, SearchSpace, StageSpace, StemSpace

KERNELS = (3, 5, 7)
STRIDES = (1, 2)
PRECISIONS = ("fp32", "int8")
WEIGHT_BITS = (2, 3, 4, 5, 6, 7, 8)

TOP_KEYS = ("name", "input_size", "resolution", "in_channels", "classes", "activation", "expand_at_e1",
            "stem", "stages", "head", "compression")
STEM_KEYS = ("width", "stride")
STAGE_KEYS = ("depth", "width", "stride", "kernel", "expansion", "groups", "skip", "blocks", "per_block",
              "activation", "se", "se_ratio")
OP_FORM_KEYS = ("kernel", "expansion", "groups", "skip")
HEAD_KEYS = ("width",)
COMPRESSION_KEYS = ("keep_ratio", "precision", "weight_bits")


def parse_space(data: Any, *, source: str = "<dict>") -> SearchSpace:
    """Validate the content of a search-space file; ``source`` names it in error messages."""
    return _Reader(source).space(data)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> SpaceError:
        where = f"{self.source}: {key}: " if key else f"{self.source}: "
        return SpaceError(where + message)

    # -- structure ---------------------------------------------------------------------------

    def mapping(self, data: Any, key: str, *, required: tuple[str, ...], allowed: tuple[str, ...]) -> Mapping:
        label = key or "top level"
        if not isinstance(data, Mapping):
            raise self.fail(key, f"{label} must be a mapping with keys {list(allowed)}, got {_show(data)}")
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise self.fail(_join(key, unknown[0]), f"unknown key {unknown[0]!r}; allowed keys: {list(allowed)}")
        missing = [k for k in required if k not in data]
        if missing:
            raise self.fail(_join(key, missing[0]), f"required key {missing[0]!r} is missing from {label}")
        return data

    def choices(self, data: Mapping, name: str, key: str, item: Callable[[Any, str], Any]) -> tuple:
        """A choice list (a bare value counts as one choice): non-empty, items valid, no duplicates."""
        path = _join(key, name)
        raw = data[name]
        values = raw if isinstance(raw, list) else [raw]
        if not values:
            raise self.fail(path, "the choice list is empty; give at least one value")
        out: list = []
        for value in values:
            checked = item(value, path)
            if checked in out:
                raise self.fail(path, f"choice {value!r} is listed twice; list each choice once")
            out.append(checked)
        return tuple(out)

    # -- scalars -----------------------------------------------------------------------------

    def integer(self, value: Any, path: str, *, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(path, f"{value!r} is not allowed; use an integer >= {minimum}")
        return value

    def one_of(self, value: Any, path: str, allowed: tuple) -> Any:
        # Exact types: YAML's 3.0 or true must not pass for 3 or 1.
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise self.fail(path, f"{value!r} is not allowed; use one of {list(allowed)}")
        return value

    def flag(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"{value!r} is not allowed; use true or false")
        return value

    def ratio(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
            raise self.fail(path, f"{value!r} is not allowed; keep ratios lie in (0, 1], e.g. 0.5 or 1.0")
        return float(value)

    def op(self, value: Any, path: str) -> BlockOp:
        hint = "use names like k3_e6, k5_e1_g2 or skip, with kernel in [3, 5, 7]"
        try:
            op = BlockOp.parse(value) if isinstance(value, str) else None
        except PolicyError:
            op = None
        if op is None or (not op.skip and (op.kernel not in KERNELS or op.expansion < 1 or op.groups < 1)):
            raise self.fail(path, f"block {value!r} is not allowed; {hint}")
        return op

    # -- sections ----------------------------------------------------------------------------

    def space(self, data: Any) -> SearchSpace:
        top = self.mapping(data, "", required=("name", "stem", "stages"), allowed=TOP_KEYS)
        name = top["name"]
        if not isinstance(name, str) or not name:
            raise self.fail("name", f"{name!r} is not allowed; use a non-empty string")
        stem = self.stem(top["stem"])
        stages = top["stages"]
        if not isinstance(stages, list) or not stages:
            raise self.fail("stages", f"{_show(stages)} is not allowed; use a non-empty list of stages")
        activation = self.one_of(top.get("activation", "relu6"), "activation", ACTIVATIONS)
        stage_spaces = tuple(self.stage(st, f"stages[{i}]", activation) for i, st in enumerate(stages))
        space = SearchSpace(
            name=name,
            resolutions=self.resolutions(top),
            in_channels=self.integer(top.get("in_channels", 3), "in_channels"),
            classes=self.integer(top.get("classes", 10), "classes"),
            activation=activation,
            expand_at_e1=self.flag(top.get("expand_at_e1", False), "expand_at_e1"),
            stem=stem,
            stages=stage_spaces,
            head=self.head(top.get("head")),
            compression=self.compression(top.get("compression")),
            source=self.source,
        )
        self.check_groups(space)
        return space

    def resolutions(self, top: Mapping) -> tuple[int, ...]:
        """``input_size: N`` (one resolution) or ``resolution: [N, ...]`` (searched), exactly one of them."""
        if "input_size" in top and "resolution" in top:
            raise self.fail("resolution", "cannot be combined with 'input_size'; give either input_size: N "
                            "(one resolution) or resolution: [N, ...] (searched)")
        if "resolution" in top:
            return self.choices(top, "resolution", "", self.integer)
        if "input_size" not in top:
            raise self.fail("input_size", "required key 'input_size' is missing from top level "
                            "(or give resolution: [N, ...] to search the input resolution)")
        return (self.integer(top["input_size"], "input_size"),)

    def stem(self, data: Any) -> StemSpace:
        stem = self.mapping(data, "stem", required=STEM_KEYS, allowed=STEM_KEYS)
        return StemSpace(
            widths=self.choices(stem, "width", "stem", self.integer),
            stride=self.one_of(stem["stride"], "stem.stride", STRIDES),
        )

    def stage(self, data: Any, key: str, default_activation: str = "relu6") -> StageSpace:
        stage = self.mapping(data, key, required=("depth", "width", "stride"), allowed=STAGE_KEYS)
        if "blocks" in stage:
            mixed = [k for k in OP_FORM_KEYS if k in stage]
            if mixed:
                raise self.fail(
                    _join(key, mixed[0]),
                    f"{mixed[0]!r} cannot be combined with 'blocks'; give either blocks or kernel/expansion",
                )
            ops = self.choices(stage, "blocks", key, self.op)
        else:
            for needed in ("kernel", "expansion"):
                if needed not in stage:
                    raise self.fail(_join(key, needed), f"required key {needed!r} is missing (or give 'blocks')")
            kernels = self.choices(stage, "kernel", key, lambda v, p: self.one_of(v, p, KERNELS))
            expansions = self.choices(stage, "expansion", key, self.integer)
            groups = self.choices(stage, "groups", key, self.integer) if "groups" in stage else (1,)
            skip = self.flag(stage["skip"], _join(key, "skip")) if "skip" in stage else False
            ops = tuple(BlockOp(kernel=k, expansion=e, groups=g) for k in kernels for e in expansions for g in groups)
            ops += (BlockOp(skip=True),) if skip else ()
        return StageSpace(
            depths=self.choices(stage, "depth", key, self.integer),
            widths=self.choices(stage, "width", key, self.integer),
            stride=self.one_of(stage["stride"], _join(key, "stride"), STRIDES),
            ops=ops,
            per_block=self.flag(stage["per_block"], _join(key, "per_block")) if "per_block" in stage else True,
            **self.stage_extras(stage, key, default_activation),
        )

    def stage_extras(self, stage: Mapping, key: str, default_activation: str) -> dict[str, Any]:
        """A stage's activation (None when absent or equal to the space's) and squeeze-excite keys."""
        activation = None
        if "activation" in stage:
            activation = self.one_of(stage["activation"], _join(key, "activation"), ACTIVATIONS)
            activation = None if activation == default_activation else activation
        se = self.flag(stage["se"], _join(key, "se")) if "se" in stage else False
        se_ratio = SE_RATIO
        if "se_ratio" in stage:
            if not se:
                raise self.fail(_join(key, "se_ratio"), "se_ratio needs 'se: true' in the same stage")
            se_ratio = self.ratio(stage["se_ratio"], _join(key, "se_ratio"))
        return {"activation": activation, "se": se, "se_ratio": se_ratio}

    def head(self, data: Any) -> HeadSpace:
        if data is None:
            return HeadSpace()
        head = self.mapping(data, "head", required=HEAD_KEYS, allowed=HEAD_KEYS)
        return HeadSpace(widths=self.choices(head, "width", "head", lambda v, p: self.integer(v, p, minimum=0)))

    def compression(self, data: Any) -> CompressionSpace:
        if data is None:
            return CompressionSpace()
        comp = self.mapping(data, "compression", required=(), allowed=COMPRESSION_KEYS)
        default = CompressionSpace()
        return CompressionSpace(
            keep_ratios=self.choices(comp, "keep_ratio", "compression", self.ratio)
            if "keep_ratio" in comp else default.keep_ratios,
            precisions=self.choices(comp, "precision", "compression", lambda v, p: self.one_of(v, p, PRECISIONS))
            if "precision" in comp else default.precisions,
            weight_bits=self.choices(comp, "weight_bits", "compression", lambda v, p: self.one_of(v, p, WEIGHT_BITS))
            if "weight_bits" in comp else default.weight_bits,
        )

    def check_groups(self, space: SearchSpace) -> None:
        """Grouped 1x1 convs split channels evenly: every width a grouped block reads or writes must divide."""
        for s, stage in enumerate(space.stages):
            groups = sorted({op.groups for op in stage.ops if not op.skip and op.groups > 1})
            if not groups:
                continue
            inputs = ("stem.width", space.stem.widths) if s == 0 else (f"stages[{s - 1}].width", space.stages[s - 1].widths)
            for key, widths in (inputs, (f"stages[{s}].width", stage.widths)):
                for g in groups:
                    bad = [w for w in widths if w % g]
                    if bad:
                        raise self.fail(
                            key, f"width {bad[0]} is not divisible by groups {g} used in stages[{s}]; "
                            f"use widths that are multiples of {g}"
                        )


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _show(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"
