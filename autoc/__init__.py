"""autoc: joint architecture search and per-layer compression for mobile CPUs."""
import os

# Before torch loads OpenMP: its default spin-waiting threads, with any other process busy on
# the machine, made a training step up to 20x slower at 2 threads than at 1 here; passive
# waiting keeps 2 threads at least as fast as 1 under load (README, "Threads"). A user's own
# setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from autoc.policy.file import PolicyFile, load_policy  # noqa: E402

__version__ = "0.1.0"
__all__ = ["PolicyFile", "load_policy", "__version__"]
