"""Search spaces: the YAML format, its validation, and sampling candidates through Optuna trials.

Format (``<name>.yaml`` in ``./search_spaces/`` or shipped in ``autoc/space/spaces/``, or any path;
a single value may stand for a one-element choice list)::

    name: mbv2-cifar             # required, a label (not part of the fingerprint)
    input_size: 32               # required, or resolution: [160, 192, 224] (searched; not with input_size)
    in_channels: 3               # default 3
    classes: 10                  # default 10; a dataset's class count overrides it at search time
    activation: relu6            # relu6 | relu | hswish, default relu6
    expand_at_e1: false          # whether expansion-1 blocks keep the 1x1 expand conv (FBNet: true)
    stem: {width: [16, 24, 32], stride: 1}         # 3x3 conv; both keys required
    stages:                      # required, non-empty; a stage has depth, width, stride and ops:
      - depth: [2, 3]            #   block-count choices
        width: [16, 24, 32]      #   output-channel choices
        stride: 2                #   stride of the first block: 1 or 2
        kernel: [3, 5, 7]        #   either kernel x expansion (x groups, default [1]) ...
        expansion: [3, 6]
        skip: false              #   ... plus the skip op if true (default false)
        # blocks: [k3_e1, k3_e1_g2, k5_e6, skip]   # ... or explicit BlockOp names instead
        per_block: true          #   each block picks its own op (true, default) or the stage shares one
        activation: hswish       #   optional: overrides the space's activation in this stage's blocks
        se: true                 #   optional (default false): squeeze-excite after each depthwise conv
        se_ratio: 0.25           #   optional: its reduced width / hidden width (rounded to a multiple of 8)
    head: {width: [640, 1280]}   # 1x1 conv before pooling; a 0 choice or no head: no head conv
    compression:                 # optional; defaults keep_ratio [1.0], precision [fp32], weight_bits [8]
      keep_ratio: [0.5, 0.75, 1.0]   # share of output channels kept, in (0, 1]
      precision: [fp32, int8]        # fp32 layers are 32/32 bits; int8 layers have 8-bit activations
      weight_bits: [8, 6, 4]         # weight bits of int8 layers, in 2..8

Unknown keys, missing required keys, empty or duplicated choice lists and out-of-range values
raise ``SpaceError`` naming the file, the key path (``stages[2].kernel``), the value and what is
allowed. Kernels are 3, 5 or 7; strides 1 or 2; widths, depths and expansions positive; widths a
grouped block reads or writes must divide by its groups.

Trial parameters (static: the same names and choices in every trial; single-choice ones are not
suggested): ``resolution``, ``stem.width``, ``stage{s}.depth``, ``stage{s}.width``, ``stage{s}.op`` (per_block
false) or ``stage{s}.block{b}.op`` for every slot b below the largest depth, ``head.width``; and per
unit (``stem``, ``stage{s}.block{b}``, ``head``) ``keep`` (``keep_hidden`` and ``keep_out`` for
blocks; ``keep_hidden`` only in stages with an expand conv), ``precision`` and ``wbits``. Ops are
BlockOp names, e.g. ``k5_e6``.
"""
from autoc.space.loader import available_spaces, load_space, resolve_space
from autoc.space.model import CompressionSpace, HeadSpace, SearchSpace, StageSpace, StemSpace
from autoc.space.params import Param, parameter_plan, search_distributions
from autoc.space.sample import candidate_from_params, random_sampling_study, sample_candidate
from autoc.space.validate import parse_space

__all__ = [
    "CompressionSpace",
    "HeadSpace",
    "Param",
    "SearchSpace",
    "StageSpace",
    "StemSpace",
    "available_spaces",
    "candidate_from_params",
    "load_space",
    "parameter_plan",
    "parse_space",
    "random_sampling_study",
    "resolve_space",
    "sample_candidate",
    "search_distributions",
]
