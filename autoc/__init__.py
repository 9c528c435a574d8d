"""autoc: joint architecture search and per-layer compression for mobile CPUs.

The front door: everything a user calls, importable from ``autoc`` (loaded on first use, so
``import autoc`` stays light)::

    import autoc

    # search a space of autoc's own blocks under a latency budget on this host
    result = autoc.run_search(autoc.SearchOptions(budget_ms=20, trials=10))
    policy = autoc.load_policy(result.policy_path)          # PolicyFile: rebuild or export it

    # compress a model you already have into budgets
    done = autoc.run_compress(autoc.CompressOptions(model="torchvision:resnet18", budgets_ms=(0.6,),
                                                    weights="my_resnet18.pt"))
    small = autoc.load_policy(done.chosen[0].policy_path).apply(
        autoc.load_model("torchvision:resnet18", num_classes=10, weights="my_resnet18.pt"))

    space = autoc.load_space("mbv2-cifar")                  # a shipped space, or a YAML path
    latency = autoc.open_latency_model("host", runs_dir=Path("runs"), space=space, progress=True)

Invalid options raise ``autoc.OptionError`` (naming the field), impossible budgets
``autoc.BudgetError``; every error autoc raises is an ``autoc.AutocError``. Progress notes go
to the ``autoc`` loggers.
"""
import os

# Before torch loads OpenMP: its default spin-waiting threads, with any other process busy on
# the machine, made a training step up to 20x slower at 2 threads than at 1; passive waiting
# keeps 2 threads at least as fast as 1 under load. A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "run_search": "autoc.search.driver",
    "SearchResult": "autoc.search.driver",
    "SearchOptions": "autoc.search.options",
    "FinalistOptions": "autoc.search.options",
    "WorkerOptions": "autoc.search.options",
    "StorageOptions": "autoc.search.options",
    "SupernetConfig": "autoc.supernet",
    "run_compress": "autoc.modelspace.driver",
    "CompressOptions": "autoc.modelspace.driver",
    "CompressResult": "autoc.modelspace.driver",
    "load_model": "autoc.modelspace.reference",
    "ModelPolicyFile": "autoc.modelspace.policy_file",
    "PolicyFile": "autoc.policy.file",
    "load_space": "autoc.space",
    "open_latency_model": "autoc.latency.device",
    **{name: "autoc.errors" for name in ("AutocError", "OptionError", "BudgetError", "SpaceError", "PolicyError",
                                         "DataError", "StorageError", "DeviceError", "ModelError", "ComputeError")},
}

__all__ = ["__version__", "load_policy", *_EXPORTS]


def load_policy(path, *, check_space: bool = True):
    """The policy file at ``path``: a ``PolicyFile`` (a searched network; ``.build()``-able and
    exportable; ``check_space=False`` skips the installed-space check) or, for a file written by
    ``autoc compress``, a ``ModelPolicyFile`` whose ``.apply(model)`` compresses the user's model
    as the search chose."""
    import json
    from pathlib import Path

    from autoc.modelspace.policy_file import READABLE, load_model_policy
    from autoc.policy.file import load_policy as load_search_policy

    try:
        schema = json.loads(Path(path).read_text()).get("schema")
    except (OSError, ValueError, AttributeError):
        schema = None  # the search-policy reader reports what is wrong with the file
    return load_model_policy(path) if schema in READABLE else load_search_policy(path, check_space=check_space)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'autoc' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
