"""CIFAR-10 in torchvision's ``cifar-10-batches-py`` form (pickled uint8 batches).

Pickle can run arbitrary code, so the unpickler accepts only the few globals a CIFAR batch
references (numpy array reconstruction); anything else is refused as not a CIFAR batch.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoc.errors import DataError

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
DEFAULT_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# Batches written by Python 2 name numpy.core; numpy 2 moved it to numpy._core.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 store bytes through it
}


@dataclass(frozen=True)
class CifarArrays:
    """CIFAR-10 as read from the pickled batches: class names, training and test images and labels."""

    classes: tuple[str, ...]
    train_x: np.ndarray  # uint8 N x 3 x 32 x 32
    train_y: np.ndarray  # int64 N
    test_x: np.ndarray
    test_y: np.ndarray


def find_pickle_folder(path: Path) -> Path | None:
    """``path`` itself or its ``cifar-10-batches-py`` child, if either holds the batches."""
    for folder in (path, path / FOLDER):
        if (folder / TEST_BATCH).is_file() or (folder / TRAIN_BATCHES[0]).is_file():
            return folder
    return None


def load_pickle_folder(folder: Path) -> CifarArrays:
    """Read a ``cifar-10-batches-py`` folder; a missing batch file is a DataError naming it."""
    missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"cifar10: {folder} lacks {', '.join(missing)}; "
            f"it needs {', '.join(TRAIN_BATCHES)} and {TEST_BATCH} (unpack cifar-10-python.tar.gz again)"
        )
    train = [_load_batch(folder / name) for name in TRAIN_BATCHES]
    test_x, test_y = _load_batch(folder / TEST_BATCH)
    return CifarArrays(
        classes=_class_names(folder / "batches.meta"),
        train_x=np.concatenate([x for x, _ in train]),
        train_y=np.concatenate([y for _, y in train]),
        test_x=test_x,
        test_y=test_y,
    )


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    entry = _unpickle(path)
    data, labels = entry.get(b"data"), entry.get(b"labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"cifar10: {path} has no 'data'/'labels' entries, so it is not a CIFAR-10 batch; "
                        "unpack cifar-10-python.tar.gz again")
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"cifar10: {path} holds data of shape {data.shape} ({data.dtype}) for {len(labels)} labels, "
                        "expected N x 3072 uint8; unpack cifar-10-python.tar.gz again")
    return data.reshape(-1, 3, 32, 32), labels


def _class_names(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return DEFAULT_CLASSES
    names = _unpickle(path).get(b"label_names")
    if not isinstance(names, list) or not names:
        return DEFAULT_CLASSES
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            entry = _BatchUnpickler(handle, path=path).load()
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"cifar10: cannot read {path} ({exc.strerror or exc}); check the file") from None
    except Exception as exc:  # pickle raises many types on damaged input
        raise DataError(f"cifar10: {path} is not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc}); "
                        "unpack cifar-10-python.tar.gz again") from None
    if not isinstance(entry, dict):
        raise DataError(f"cifar10: {path} does not hold a dict, so it is not a CIFAR-10 batch; "
                        "unpack cifar-10-python.tar.gz again")
    return entry


class _BatchUnpickler(pickle.Unpickler):
    def __init__(self, handle, *, path: Path) -> None:
        super().__init__(handle, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str):
        canonical = "numpy._core" + module[len("numpy.core"):] if module.startswith("numpy.core") else module
        if (canonical, name) not in _ALLOWED:
            raise DataError(
                f"cifar10: {self._path} references {module}.{name}, which a CIFAR-10 batch never does; "
                "refusing to load it (use the official cifar-10-python.tar.gz)"
            )
        try:
            return super().find_class(canonical, name)
        except ModuleNotFoundError:  # numpy 1.x before numpy._core existed
            return super().find_class(canonical.replace("numpy._core", "numpy.core"), name)
