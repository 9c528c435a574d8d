"""autoc: joint architecture search and per-layer compression for mobile CPUs."""
from autoc.export.policy_file import PolicyFile, load_policy

__version__ = "0.1.0"
__all__ = ["PolicyFile", "load_policy", "__version__"]
