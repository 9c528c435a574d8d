"""Model references: ``torchvision:NAME`` or ``package.module:callable``, and the user's weights."""
from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from autoc.errors import ModelError

TORCHVISION = "torchvision"

# Checkpoint layouts that wrap the state dict: Lightning and many training scripts save one of these.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def load_model(reference: str, *, num_classes: int | None = None, weights: str | Path | None = None) -> nn.Module:
    """The model ``reference`` names, in eval mode, with ``weights`` (a state dict file) loaded.

    ``torchvision:NAME`` builds any torchvision classification model with random weights (nothing is
    downloaded) and ``num_classes`` outputs; ``package.module:callable`` imports the callable and calls
    it (with ``num_classes`` when it takes that argument)::

        model = load_model("torchvision:resnet18", num_classes=10, weights="my_resnet18.pt")
    """
    source, sep, name = reference.partition(":")
    if not sep or not source or not name:
        raise ModelError(
            f"model reference {reference!r} names no source: write torchvision:NAME (e.g. torchvision:resnet18) "
            "or package.module:callable")
    model = _torchvision_model(name, num_classes) if source == TORCHVISION else _callable_model(source, name, num_classes)
    if weights is not None:
        load_weights(model, weights)
    return model.eval()


def _torchvision_model(name: str, num_classes: int | None) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"
        raise ModelError(f"torchvision has no classification model {name!r}: {hint}")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return torchvision.models.get_model(name, weights=None, **kwargs)


def _callable_model(module_name: str, attribute: str, num_classes: int | None) -> nn.Module:
    reference = f"{module_name}:{attribute}"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any error it raises on import is theirs to fix
        raise ModelError(f"cannot import {module_name!r} for model {reference} ({type(exc).__name__}: {exc}): "
                         "install the package or run from the folder that holds it") from exc
    factory = getattr(module, attribute, None)
    if factory is None or not callable(factory):
        raise ModelError(f"{module_name!r} has no callable {attribute!r}: name a function or class that returns "
                         "an nn.Module")
    try:
        takes_classes = num_classes is not None and "num_classes" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins and some C extensions have no signature
        takes_classes = False
    try:
        model = factory(num_classes=num_classes) if takes_classes else factory()
    except Exception as exc:
        raise ModelError(f"calling {reference}() failed ({type(exc).__name__}: {exc}): fix the callable so it "
                         "builds the model with no arguments") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"{reference}() returned {type(model).__name__}, not a torch.nn.Module: return the model")
    return model


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load the state dict in ``path`` into ``model``, or say which key does not match."""
    state = _read_state_dict(Path(path))
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        first = f"{missing[0]!r} is missing" if missing else f"{unexpected[0]!r} is not in the model"
        raise ModelError(f"weights {path} do not match the model: {first} ({len(missing)} missing, "
                         f"{len(unexpected)} unexpected keys): pass the checkpoint this model was trained as")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelError(f"weights {path} do not match the model: {key!r} has shape {tuple(state[key].shape)}, "
                             f"the model's is {tuple(tensor.shape)}: check the model's arguments (e.g. num_classes)")
    model.load_state_dict(state)


def _read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist: pass the path of a saved state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read weights file {path} ({type(exc).__name__}): save it with "
                         "torch.save(model.state_dict(), path)") from exc
    for key in _WRAPPER_KEYS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"weights file {path} holds no state dict: save it with torch.save(model.state_dict(), path)")
    # nn.DataParallel / DistributedDataParallel prefix every key with "module."
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return state


def weights_digest(path: str | Path) -> str:
    """sha256 of a weights file: recorded with a policy so it is applied to the weights it was searched on."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
