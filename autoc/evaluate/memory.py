"""How much memory training a network takes, worked out from its plan before anything is built:
a space whose largest network cannot be trained here is refused with the figure, instead of a
torch allocation failure after minutes (or the machine swapping)."""
from __future__ import annotations

import os

from autoc.arch.netspec import build_netspec
from autoc.errors import SpaceError

BYTES = 4  # fp32
# Per parameter: weights, gradient and SGD momentum, and the teacher's copy that candidates distil from.
PER_PARAMETER = 4
# Per activation element of a training batch: the conv output, BatchNorm's and the activation
# function's, all kept for the backward pass.
PER_ACTIVATION = 3


def training_bytes(spec, *, batch_size: int) -> int:
    """Approximate peak memory of one training step of the network ``spec`` at ``batch_size``."""
    params = sum(c.cout * (c.cin // c.groups) * c.kernel**2 for c in spec.convs()) + spec.classifier_in * spec.num_classes
    params += sum(block.se.params() for block in spec.blocks if block.se is not None)
    activations = sum(conv.cout * resolution**2 for conv, resolution in spec.conv_resolutions())
    return BYTES * (PER_PARAMETER * params + PER_ACTIVATION * batch_size * activations)


def available_bytes() -> int | None:
    """Memory the kernel says a new allocation can get without swapping (MemAvailable); None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_largest_fits(space, *, num_classes: int, batch_size: int, available: int | None = None) -> int:
    """Refuse a space whose largest network (the teacher, trained first) would not fit in memory;
    returns the estimate in bytes."""
    need = training_bytes(build_netspec(space.largest_arch(num_classes)), batch_size=batch_size)
    free = available_bytes() if available is None else available
    if free is not None and need > free:
        raise SpaceError(
            f"the largest network of space {space.name!r} needs about {need / 1e9:.1f} GB of memory to train at "
            f"batch {batch_size}, more than the {free / 1e9:.1f} GB free here; use smaller widths, depths, "
            f"expansions or input_size in {space.source}, or free memory"
        )
    return need
