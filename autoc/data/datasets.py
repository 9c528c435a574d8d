"""Datasets for short fine-tuning and evaluation: a name (plus a path) -> normalised tensors.

Everything is held in memory: search uses small sets (or ``max_train``/``max_val`` caps),
and a candidate's few hundred fine-tuning steps should not wait on I/O. Caps pick a
seeded, class-stratified subset of file names before anything is decoded.

Registered names: ``digits`` (scikit-learn's bundled 8x8 digits, the default; nothing to
fetch), ``cifar10`` (JPEG zip, its extracted folder, or ``cifar-10-batches-py``) and
``imagefolder`` (``train/<class>/*`` and ``val/<class>/*`` images, as a folder or zip).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from autoc.errors import DataError
from autoc.data.cifar_pickle import FOLDER as FOLDER_NAME, find_pickle_folder, load_pickle_folder
from autoc.data.decode import decode_images
from autoc.data.image_tree import ImageTree, layout_text, open_image_tree
from autoc.data.preprocessing import RESIZE_METHOD, Preprocessing
from autoc.data.sampling import stratified_split, stratified_subset

DEFAULT_DATASET = "digits"

# Independent random streams per use, so capping train never changes which val items are kept.
_SPLIT_STREAM, _TRAIN_STREAM, _VAL_STREAM, _SELECTION_STREAM = 0, 1, 2, 3


@dataclass(frozen=True, eq=False)
class DatasetSplit:
    """Train and validation tensors, normalised per channel with the train mean and std.

    ``fingerprint`` names the data (dataset, source, input size, seed, sizes and a digest of
    the selected items) so caches such as supernet weights can be keyed by it. It identifies
    files by location and name, not by pixel content.
    """

    name: str
    classes: tuple[str, ...]
    train_x: torch.Tensor = field(repr=False)  # float32 N x 3 x S x S
    train_y: torch.Tensor = field(repr=False)  # int64 N
    val_x: torch.Tensor = field(repr=False)
    val_y: torch.Tensor = field(repr=False)
    mean: tuple[float, float, float]  # of the [0, 1] train pixels, per channel; needed to deploy
    std: tuple[float, float, float]
    fingerprint: str
    # The same for the training items alone: what a model trained on them (a supernet) depends on.
    train_fingerprint: str = ""
    # Optional selection split: training-pool items left out of train (``max_selection``), to
    # choose between models on without touching the validation split that reports on them.
    selection_x: torch.Tensor | None = field(default=None, repr=False)
    selection_y: torch.Tensor | None = field(default=None, repr=False)
    selection_fingerprint: str = ""
    # How a raw image becomes one of these tensors (mean and std included): what a deployed model needs.
    preprocessing: Preprocessing | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def selection_as_val(self) -> "DatasetSplit":
        """The same training items, validated on the selection split: what a search that must not
        see the validation split scores its candidates on."""
        if self.selection_x is None or self.selection_y is None:
            raise DataError("this dataset was loaded without a selection split; load it with max_selection=N")
        return replace(self, val_x=self.selection_x, val_y=self.selection_y,
                       fingerprint=f"{self.train_fingerprint}|{self.selection_fingerprint}",
                       selection_x=None, selection_y=None, selection_fingerprint="")

    @property
    def input_size(self) -> int:
        return int(self.train_x.shape[-1])


@dataclass(frozen=True)
class _Options:
    input_size: int
    seed: int
    val_fraction: float
    max_train: int | None
    max_val: int | None
    download: bool = False
    max_selection: int | None = None
    offer_download: bool = True


@dataclass(frozen=True)
class _Loaded:
    """What a loader returns: pixels in [0, 1] (float) or 0..255 (uint8), before normalising."""

    classes: tuple[str, ...]
    train_x: torch.Tensor
    train_y: np.ndarray
    val_x: torch.Tensor
    val_y: np.ndarray
    source: str
    selection: str  # digest of the chosen items
    train_selection: str  # digest of the chosen training items
    # max_selection items of the training pool outside train_x, and their digest
    selection_x: torch.Tensor | None = None
    selection_y: np.ndarray | None = None
    selection_digest: str = ""
    # how the pixels were made from the source images (see autoc.data.preprocessing)
    colour: str = "rgb"
    pixel_max: float = 255.0
    antialias: bool = True


def resized(data: DatasetSplit, size: int) -> DatasetSplit:
    """``data`` with every image resized to ``size`` square: what a candidate searched at a smaller
    resolution than the space's largest (the size the data is loaded at) trains and is scored on.
    Bilinear resizing commutes with the per-channel normalisation, so the loaded tensors are
    resized as they are; the data itself is unchanged at its own size."""
    size = _positive_int("input_size", size, example=32)
    if size == data.input_size:
        return data

    def shrink(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else resize_images(x, size)

    preprocessing = None if data.preprocessing is None else data.preprocessing.at_size(size)
    return replace(data, train_x=shrink(data.train_x), val_x=shrink(data.val_x), selection_x=shrink(data.selection_x),
                   fingerprint=f"{data.fingerprint}|{size}px", preprocessing=preprocessing,
                   train_fingerprint=f"{data.train_fingerprint}|{size}px" if data.train_fingerprint else "",
                   selection_fingerprint=f"{data.selection_fingerprint}|{size}px" if data.selection_fingerprint else "")


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Loaded (normalised) N x C x H x W images at ``size`` square: the one resize ``resized`` and the
    supernet's per-sub-network resolutions use (bilinear, antialiased when shrinking); unchanged at
    their own size."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size,) * 2, mode=RESIZE_METHOD, align_corners=False, antialias=size < x.shape[-1])


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    input_size: int,
    seed: int = 0,
    val_fraction: float = 0.2,
    max_train: int | None = None,
    max_val: int | None = None,
    max_selection: int | None = None,
    download: bool = False,
    offer_download: bool = True,
) -> DatasetSplit:
    """Load dataset ``name`` in memory, resized to ``input_size`` square and normalised.

    ``val_fraction`` applies where a dataset has no validation split of its own (digits);
    cifar10 validates on its test split and imagefolder on ``val/``. ``max_train`` and
    ``max_val`` keep a seeded class-stratified subset of that many items. ``download``
    (cifar10 only): fetch torchvision's ``cifar-10-batches-py`` into ``data_dir`` when it is
    not there yet; without network access this fails with a DataError saying what to do.
    ``max_selection`` also keeps a seeded stratified subset of that many training-pool items
    *not* in the train subset as a selection split (``DatasetSplit.selection_as_val``); it
    changes neither the train nor the validation items. ``offer_download``: whether an
    error may suggest ``download`` (False where the caller has no such option).
    """
    loader = _LOADERS.get(name) if isinstance(name, str) else None
    if loader is None:
        raise DataError(f"unknown dataset {name!r}; use one of {', '.join(DATASET_NAMES)}")
    options = _Options(
        input_size=_positive_int("input_size", input_size, example=32),
        seed=_seed(seed),
        val_fraction=_fraction(val_fraction),
        max_train=None if max_train is None else _positive_int("max_train", max_train, example=5000),
        max_val=None if max_val is None else _positive_int("max_val", max_val, example=1000),
        download=bool(download),
        max_selection=None if max_selection is None else _positive_int("max_selection", max_selection, example=1000),
        offer_download=offer_download,
    )
    path = None if data_dir is None else Path(data_dir).expanduser()
    loaded = loader(path, options)
    return _finish(name, loaded, options)


# --- loaders ---------------------------------------------------------------------------


def _load_digits(path: Path | None, options: _Options) -> _Loaded:
    if path is not None:
        raise DataError(
            f"digits is bundled with scikit-learn and reads no files, but data_dir {path} was given; "
            "drop the data directory, or use dataset cifar10 or imagefolder for data on disk"
        )
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images / 16.0).to(torch.float32).unsqueeze(1)  # N x 1 x 8 x 8 in [0, 1]
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_idx, val_idx = stratified_split(labels, options.val_fraction, rng=_rng(options.seed, _SPLIT_STREAM))
    if not len(train_idx) or not len(val_idx):
        raise DataError(
            f"val_fraction {options.val_fraction} leaves {len(train_idx)} train and {len(val_idx)} validation "
            f"images of digits' {len(labels)}; use a fraction such as 0.2"
        )
    classes = tuple(str(c) for c in bunch.target_names)
    pool = train_idx
    kept = _cap(labels[pool], options.max_train, options, stream=_TRAIN_STREAM, what="max_train", num_classes=len(classes))
    train_idx = pool[kept]
    left = _left_out(labels[pool], kept, options, num_classes=len(classes))
    selection_idx = pool[left] if left is not None else None
    val_idx = val_idx[_cap(labels[val_idx], options.max_val, options, stream=_VAL_STREAM, what="max_val",
                           num_classes=len(classes))]

    antialias = options.input_size < 8  # only when shrinking the 8x8 images

    def pixels(idx: np.ndarray) -> torch.Tensor:
        grey = F.interpolate(images[torch.from_numpy(idx)], size=(options.input_size,) * 2, mode=RESIZE_METHOD,
                             align_corners=False, antialias=antialias)
        return grey.expand(-1, 3, -1, -1).contiguous()

    return _Loaded(
        classes=classes,
        train_x=pixels(train_idx),
        train_y=labels[train_idx],
        val_x=pixels(val_idx),
        val_y=labels[val_idx],
        source="sklearn.datasets.load_digits",
        colour="grey",
        pixel_max=16.0,
        antialias=antialias,
        selection=_digest(map(str, train_idx), map(str, val_idx)),
        train_selection=_digest(map(str, train_idx), ()),
        **({} if selection_idx is None else {"selection_x": pixels(selection_idx), "selection_y": labels[selection_idx],
                                             "selection_digest": _digest((), map(str, selection_idx))}),
    )


_CIFAR_HINT = (
    "pass the CIFAR-10 JPEG zip (train/<class>/*.jpg and test/<class>/*.jpg), its extracted folder, "
    "or torchvision's cifar-10-batches-py folder"
)


def _load_cifar10(path: Path | None, options: _Options) -> _Loaded:
    if options.download and path is not None and (not path.exists() or path.is_dir()):
        if find_pickle_folder(path) is None:
            download_cifar10(path)
    fetch = ", or set download to fetch it" if options.offer_download else ""
    path = _existing("cifar10", path, hint=_CIFAR_HINT + fetch, download=options.offer_download)
    if path.is_dir():
        pickles = find_pickle_folder(path)
        if pickles is not None:
            return _from_pickles(pickles, options)
        if not ((path / "train").is_dir() or (path / "test").is_dir()):
            raise DataError(
                f"cifar10: folder {path} holds neither train/ and test/ class folders nor cifar-10-batches-py "
                f"pickles; {_CIFAR_HINT}"
            )
    elif path.name.endswith((".tar.gz", ".tgz", ".tar")):
        raise DataError(f"cifar10: {path} is a tar archive, which is not read directly; "
                        "unpack it and pass the cifar-10-batches-py folder it holds")
    with open_image_tree(path, splits=("train", "test"), what="cifar10") as tree:
        return _from_tree(tree, options, splits=("train", "test"))


def download_cifar10(root: Path) -> Path:
    """Fetch and unpack CIFAR-10 (torchvision's ``CIFAR10(root, download=True)``) into ``root``."""
    try:
        from torchvision.datasets import CIFAR10

        root.mkdir(parents=True, exist_ok=True)
        CIFAR10(str(root), train=True, download=True)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"cifar10: could not download CIFAR-10 into {root} ({reason}); without network access, fetch "
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz elsewhere and unpack it into that folder, "
            "or pass the CIFAR-10 JPEG zip as the data path"
        ) from None
    return root / FOLDER_NAME


_IMAGEFOLDER_HINT = f"pass a folder (or .zip) holding {layout_text(('train', 'val'))}"


def _load_imagefolder(path: Path | None, options: _Options) -> _Loaded:
    path = _existing("imagefolder", path, hint=_IMAGEFOLDER_HINT)
    with open_image_tree(path, splits=("train", "val"), what="imagefolder") as tree:
        return _from_tree(tree, options, splits=("train", "val"))


_LOADERS: dict[str, Callable[[Path | None, _Options], _Loaded]] = {
    "digits": _load_digits,
    "cifar10": _load_cifar10,
    "imagefolder": _load_imagefolder,
}
DATASET_NAMES: tuple[str, ...] = tuple(_LOADERS)


def _from_tree(tree: ImageTree, options: _Options, *, splits: tuple[str, str]) -> _Loaded:
    num_classes = len(tree.classes)
    chosen: list[tuple[list[str], np.ndarray]] = []
    extra = {}
    for split, limit, stream, what in ((splits[0], options.max_train, _TRAIN_STREAM, "max_train"),
                                       (splits[1], options.max_val, _VAL_STREAM, "max_val")):
        names = [name for cls in tree.classes for name in tree.files[split][cls]]
        labels = np.repeat(np.arange(num_classes), [len(tree.files[split][cls]) for cls in tree.classes])
        keep = _cap(labels, limit, options, stream=stream, what=what, num_classes=num_classes)
        chosen.append(([names[i] for i in keep], labels[keep]))
        left = _left_out(labels, keep, options, num_classes=num_classes) if split == splits[0] else None
        if left is not None:
            left_names = [names[i] for i in left]
            extra = {"selection_x": decode_images(left_names, tree.read, size=options.input_size, describe=tree.describe),
                     "selection_y": labels[left], "selection_digest": _digest((), left_names)}
    (train_names, train_y), (val_names, val_y) = chosen
    train_x = decode_images(train_names, tree.read, size=options.input_size, describe=tree.describe)
    val_x = decode_images(val_names, tree.read, size=options.input_size, describe=tree.describe)
    source = f"{tree.kind}:{tree.location.resolve()}"
    if tree.kind == "zip":
        source += f"({tree.location.stat().st_size} bytes)"
    return _Loaded(classes=tree.classes, train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y,
                   source=source, selection=_digest(train_names, val_names),
                   train_selection=_digest(train_names, ()), **extra)


def _from_pickles(folder: Path, options: _Options) -> _Loaded:
    arrays = load_pickle_folder(folder)
    num_classes = len(arrays.classes)
    train_keep = _cap(arrays.train_y, options.max_train, options, stream=_TRAIN_STREAM, what="max_train",
                      num_classes=num_classes)
    val_keep = _cap(arrays.test_y, options.max_val, options, stream=_VAL_STREAM, what="max_val",
                    num_classes=num_classes)
    left = _left_out(arrays.train_y, train_keep, options, num_classes=num_classes)

    def pixels(x: np.ndarray) -> torch.Tensor:
        images = torch.from_numpy(np.ascontiguousarray(x))
        if options.input_size == 32:
            return images
        return F.interpolate(images, size=(options.input_size,) * 2, mode=RESIZE_METHOD, align_corners=False,
                             antialias=True)

    return _Loaded(
        classes=arrays.classes,
        train_x=pixels(arrays.train_x[train_keep]),
        train_y=arrays.train_y[train_keep],
        val_x=pixels(arrays.test_x[val_keep]),
        val_y=arrays.test_y[val_keep],
        source=f"pickle:{folder.resolve()}",
        selection=_digest(map(str, train_keep), map(str, val_keep)),
        train_selection=_digest(map(str, train_keep), ()),
        **({} if left is None else {"selection_x": pixels(arrays.train_x[left]), "selection_y": arrays.train_y[left],
                                    "selection_digest": _digest((), map(str, left))}),
    )


# --- shared steps ----------------------------------------------------------------------


def _finish(name: str, loaded: _Loaded, options: _Options) -> DatasetSplit:
    train_x, val_x = _unit_float(loaded.train_x), _unit_float(loaded.val_x)
    selection_x = None if loaded.selection_x is None else _unit_float(loaded.selection_x)
    mean, std = _channel_stats(train_x)
    preprocessing = Preprocessing(
        input_size=options.input_size, channels=int(train_x.shape[1]), colour=loaded.colour,
        pixel_max=loaded.pixel_max, antialias=loaded.antialias, mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std), class_names=tuple(loaded.classes),
    )
    for x in (train_x, val_x, selection_x):
        if x is not None:
            preprocessing.normalise_(x)
    common = (name, loaded.source, f"{options.input_size}px", f"seed={options.seed}", f"train={len(loaded.train_y)}")
    fingerprint = "|".join((*common, f"val={len(loaded.val_y)}", loaded.selection))
    train_fingerprint = "|".join((*common, loaded.train_selection))
    return DatasetSplit(
        name=name,
        classes=loaded.classes,
        train_x=train_x,
        train_y=torch.as_tensor(loaded.train_y, dtype=torch.int64),
        val_x=val_x,
        val_y=torch.as_tensor(loaded.val_y, dtype=torch.int64),
        mean=preprocessing.mean,
        std=preprocessing.std,
        fingerprint=fingerprint,
        train_fingerprint=train_fingerprint,
        selection_x=selection_x,
        selection_y=None if loaded.selection_y is None else torch.as_tensor(loaded.selection_y, dtype=torch.int64),
        selection_fingerprint="" if loaded.selection_y is None
        else f"selection={len(loaded.selection_y)}|{loaded.selection_digest}",
        preprocessing=preprocessing,
    )


def _unit_float(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32, copy=True)


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std (torch's float32 reduction is accurate to ~1e-8 here)."""
    var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
    std = var.sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # a constant channel keeps its scale
    return mean, std


def _cap(labels: np.ndarray, limit: int | None, options: _Options, *, stream: int, what: str,
         num_classes: int) -> np.ndarray:
    """Indices to keep: all, or a seeded stratified subset of ``limit`` items."""
    if limit is None:
        return np.arange(len(labels))
    if limit < num_classes:
        raise DataError(f"{what}={limit} is smaller than the {num_classes} classes, so some classes would have "
                        f"no images; use {what} >= {num_classes}")
    return stratified_subset(labels, limit, rng=_rng(options.seed, stream))


def _left_out(labels: np.ndarray, kept: np.ndarray, options: _Options, *, num_classes: int) -> np.ndarray | None:
    """Indices of ``max_selection`` items of the pool ``labels`` outside ``kept`` (None when not asked for)."""
    if options.max_selection is None:
        return None
    rest = np.setdiff1d(np.arange(len(labels)), kept)
    if len(rest) < options.max_selection:
        raise DataError(
            f"max_selection={options.max_selection} asks for more than the {len(rest)} training items left outside "
            f"the train subset; lower max_selection, or max_train"
        )
    return rest[_cap(labels[rest], options.max_selection, options, stream=_SELECTION_STREAM, what="max_selection",
                     num_classes=num_classes)]


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _digest(train_ids: Iterable[object], val_ids: Iterable[object]) -> str:
    sha = hashlib.sha256()
    for tag, ids in ((b"train", train_ids), (b"val", val_ids)):
        sha.update(tag)
        for item in ids:
            sha.update(b"\0" + str(item).encode())
    return sha.hexdigest()[:16]


def _existing(name: str, path: Path | None, *, hint: str, download: bool = False) -> Path:
    named = ("data_dir", "download") if download else ("data_dir",)
    if path is None:
        raise DataError(f"{name} needs a data path (data_dir); {hint}", fields=named)
    if not path.exists():
        raise DataError(f"{name}: data path {path} does not exist; {hint}", fields=named)
    return path


# --- option checks ---------------------------------------------------------------------


def _positive_int(what: str, value: object, *, example: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{what} must be a positive integer, got {value!r}; use e.g. {example}")
    return int(value)


def _seed(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise DataError(f"seed must be a non-negative integer, got {value!r}; use e.g. 0")
    return int(value)


def _fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < float(value) < 1.0:
        raise DataError(f"val_fraction must lie strictly between 0 and 1, got {value!r}; use e.g. 0.2")
    return float(value)
